/* coap_option.h, shared part. */
typedef struct coap_optlist_t coap_optlist_t;

void coap_delete_optlist(coap_optlist_t *optlist_chain);
