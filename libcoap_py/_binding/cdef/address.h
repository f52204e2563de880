/* coap_address.h: the layout differs by platform, so the compiler fills it in. */
typedef struct coap_address_t { ...; } coap_address_t;

void coap_address_init(coap_address_t *addr);
