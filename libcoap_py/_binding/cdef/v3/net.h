/* net.h, libcoap 4.3. */
typedef int... coap_response_t;
static const int COAP_RESPONSE_OK;
static const int COAP_RESPONSE_FAIL;
typedef int... coap_nack_reason_t;

typedef coap_response_t (*coap_response_handler_t)(coap_session_t *session,
                                                   const coap_pdu_t *sent,
                                                   const coap_pdu_t *received,
                                                   const coap_mid_t mid);
typedef void (*coap_nack_handler_t)(coap_session_t *session,
                                    const coap_pdu_t *sent,
                                    const coap_nack_reason_t reason,
                                    const coap_mid_t mid);

void coap_register_response_handler(coap_context_t *context,
                                    coap_response_handler_t handler);
void coap_register_nack_handler(coap_context_t *context, coap_nack_handler_t handler);
void coap_register_option(coap_context_t *ctx, uint16_t type);
uint16_t coap_new_message_id(coap_session_t *session);
coap_mid_t coap_send(coap_session_t *session, coap_pdu_t *pdu);
int coap_io_process(coap_context_t *ctx, uint32_t timeout_ms);
int coap_run_once(coap_context_t *ctx, uint32_t timeout_ms);
void coap_ticks(coap_tick_t *t);
int coap_context_set_psk(coap_context_t *context, const char *hint,
                         const uint8_t *key, size_t key_len);
int coap_context_set_pki(coap_context_t *context, const coap_dtls_pki_t *setup_data);
int coap_context_set_psk2(coap_context_t *context, coap_dtls_spsk_t *setup_data);
void coap_context_set_max_idle_sessions(coap_context_t *context, unsigned int max_idle_sessions);
void coap_context_set_session_timeout(coap_context_t *context, unsigned int session_timeout);
static const uint32_t COAP_IO_WAIT;
static const uint32_t COAP_IO_NO_WAIT;
