/* coap_session.h, libcoap 4.2: sessions are public structures. */
void coap_session_set_ack_timeout(coap_session_t *session, coap_fixed_point_t value);
coap_fixed_point_t coap_session_get_ack_timeout(coap_session_t *session);
coap_fixed_point_t coap_session_get_ack_random_factor(coap_session_t *session);
void coap_session_set_max_retransmit(coap_session_t *session, unsigned int value);
unsigned int coap_session_get_max_transmit(coap_session_t *session);
coap_endpoint_t *coap_new_endpoint(coap_context_t *context, const coap_address_t *listen_addr,
                                   coap_proto_t proto);
