"""The server side: endpoints, resources, request dispatch, delayed responses, block-wise."""
