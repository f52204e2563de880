/* coap_option.h, shared part. */
typedef struct coap_optlist_t coap_optlist_t;

void coap_delete_optlist(coap_optlist_t *optlist_chain);
uint32_t coap_opt_length(const coap_opt_t *opt);
const uint8_t *coap_opt_value(const coap_opt_t *opt);
coap_optlist_t *coap_new_optlist(uint16_t number, size_t length, const uint8_t *data);
int coap_insert_optlist(coap_optlist_t **optlist_chain, coap_optlist_t *optlist);
int coap_add_optlist_pdu(coap_pdu_t *pdu, coap_optlist_t **optlist_chain);
unsigned int coap_encode_var_safe(uint8_t *buf, size_t length, unsigned int val);
