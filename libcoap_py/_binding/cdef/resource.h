/* resource.h, shared part. */
static const int COAP_RESOURCE_FLAGS_NOTIFY_NON;
static const int COAP_RESOURCE_FLAGS_NOTIFY_CON;
static const int COAP_RESOURCE_FLAGS_RELEASE_URI;

void coap_add_resource(coap_context_t *context, coap_resource_t *resource);
int coap_delete_resource(coap_context_t *context, coap_resource_t *resource);
void coap_resource_set_userdata(coap_resource_t *resource, void *data);
void *coap_resource_get_userdata(coap_resource_t *resource);
int coap_resource_notify_observers(coap_resource_t *resource, const coap_string_t *query);
