/* resource.h, libcoap 4.3. */
typedef int... coap_request_t;
typedef void (*coap_method_handler_t)(coap_resource_t *, coap_session_t *,
                                      const coap_pdu_t *, const coap_string_t *,
                                      coap_pdu_t *);
coap_resource_t *coap_resource_init(coap_str_const_t *uri_path, int flags);
coap_resource_t *coap_resource_unknown_init2(coap_method_handler_t put_handler, int flags);
void coap_register_handler(coap_resource_t *resource, coap_request_t method,
                           coap_method_handler_t handler);
coap_str_const_t *coap_resource_get_uri_path(coap_resource_t *resource);
coap_str_const_t *coap_new_str_const(const uint8_t *data, size_t size);
void coap_delete_str_const(coap_str_const_t *string);
