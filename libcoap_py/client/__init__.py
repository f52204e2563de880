"""The client side: sessions to servers, requests, observations, block-wise transfers."""
