/* coap_session.h, shared part. */
static const int COAP_SESSION_STATE_NONE;
static const int COAP_SESSION_STATE_CONNECTING;
static const int COAP_SESSION_STATE_HANDSHAKE;
static const int COAP_SESSION_STATE_CSM;
static const int COAP_SESSION_STATE_ESTABLISHED;

typedef struct coap_fixed_point_t {
  uint16_t integer_part;
  uint16_t fractional_part;
} coap_fixed_point_t;

coap_session_t *coap_session_reference(coap_session_t *session);
void coap_session_release(coap_session_t *session);
void coap_session_disconnected(coap_session_t *session, int reason);
void coap_session_set_app_data(coap_session_t *session, void *data);
void *coap_session_get_app_data(const coap_session_t *session);
size_t coap_session_max_pdu_size(const coap_session_t *session);
void coap_session_set_mtu(coap_session_t *session, unsigned mtu);
const char *coap_session_str(const coap_session_t *session);
void coap_free_endpoint(coap_endpoint_t *endpoint);
const char *coap_endpoint_str(const coap_endpoint_t *endpoint);

/* The client session constructors of the C sample (same in 4.2 and 4.3). */
coap_session_t *coap_new_client_session(coap_context_t *ctx,
                                        const coap_address_t *local_if,
                                        const coap_address_t *server,
                                        coap_proto_t proto);
coap_session_t *coap_new_client_session_psk(coap_context_t *ctx,
                                            const coap_address_t *local_if,
                                            const coap_address_t *server,
                                            coap_proto_t proto,
                                            const char *identity,
                                            const uint8_t *key, unsigned key_len);
coap_session_t *coap_new_client_session_pki(coap_context_t *ctx,
                                            const coap_address_t *local_if,
                                            const coap_address_t *server,
                                            coap_proto_t proto,
                                            coap_dtls_pki_t *setup_data);
