/* coap_session.h, libcoap 4.3. */
typedef int... coap_session_state_t;
typedef int... coap_session_type_t;

coap_session_state_t coap_session_get_state(const coap_session_t *session);
coap_session_type_t coap_session_get_type(const coap_session_t *session);
coap_proto_t coap_session_get_proto(const coap_session_t *session);
coap_context_t *coap_session_get_context(const coap_session_t *session);
const coap_address_t *coap_session_get_addr_remote(const coap_session_t *session);
const coap_address_t *coap_session_get_addr_local(const coap_session_t *session);
coap_session_t *coap_new_client_session_psk2(coap_context_t *ctx,
                                             const coap_address_t *local_if,
                                             const coap_address_t *server,
                                             coap_proto_t proto,
                                             coap_dtls_cpsk_t *setup_data);
void coap_session_init_token(coap_session_t *session, size_t length,
                             const uint8_t *token);
void coap_session_new_token(coap_session_t *session, size_t *length,
                            uint8_t *token);
void coap_session_set_ack_timeout(coap_session_t *session, coap_fixed_point_t value);
coap_fixed_point_t coap_session_get_ack_timeout(const coap_session_t *session);
void coap_session_set_ack_random_factor(coap_session_t *session,
                                        coap_fixed_point_t value);
coap_fixed_point_t coap_session_get_ack_random_factor(const coap_session_t *session);
void coap_session_set_max_retransmit(coap_session_t *session, uint16_t value);
uint16_t coap_session_get_max_retransmit(const coap_session_t *session);
void coap_session_set_nstart(coap_session_t *session, uint16_t value);
uint16_t coap_session_get_nstart(const coap_session_t *session);
coap_mid_t coap_session_send_ping(coap_session_t *session);
const coap_bin_const_t *coap_session_get_psk_identity(const coap_session_t *session);
const coap_bin_const_t *coap_session_get_psk_hint(const coap_session_t *session);
coap_endpoint_t *coap_new_endpoint(coap_context_t *context, const coap_address_t *listen_addr,
                                   coap_proto_t proto);
