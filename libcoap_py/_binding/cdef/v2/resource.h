/* resource.h, libcoap 4.2. */
coap_resource_t *coap_resource_init(coap_str_const_t *uri_path, int flags);
coap_str_const_t *coap_new_str_const(const uint8_t *data, size_t size);
void coap_delete_str_const(coap_str_const_t *string);
