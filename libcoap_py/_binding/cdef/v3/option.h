/* coap_option.h, libcoap 4.3. */
typedef struct { ...; } coap_opt_iterator_t;
typedef struct coap_opt_filter_t { ...; } coap_opt_filter_t;

coap_opt_iterator_t *coap_option_iterator_init(const coap_pdu_t *pdu,
                                               coap_opt_iterator_t *oi,
                                               const coap_opt_filter_t *filter);
coap_opt_t *coap_option_next(coap_opt_iterator_t *oi);
unsigned int coap_decode_var_bytes(const uint8_t *buf, size_t length);
