/* net.h, libcoap 4.2. */
static const int COAP_RUN_BLOCK;
static const int COAP_RUN_NONBLOCK;

typedef void (*coap_response_handler_t)(coap_context_t *context, coap_session_t *session,
                                        coap_pdu_t *sent, coap_pdu_t *received,
                                        const coap_tid_t id);
typedef void (*coap_nack_handler_t)(coap_context_t *context, coap_session_t *session,
                                    coap_pdu_t *sent, int reason, const coap_tid_t id);

void coap_register_response_handler(coap_context_t *context,
                                    coap_response_handler_t handler);
uint16_t coap_new_message_id(coap_session_t *session);
coap_tid_t coap_send(coap_session_t *session, coap_pdu_t *pdu);
int coap_run_once(coap_context_t *ctx, unsigned int timeout_ms);
void coap_ticks(coap_tick_t *t);
int coap_context_set_psk(coap_context_t *context, const char *hint,
                         const uint8_t *key, size_t key_len);
int coap_context_set_pki(coap_context_t *context, coap_dtls_pki_t *setup_data);
int coap_context_set_pki_root_cas(coap_context_t *context, const char *ca_file,
                                  const char *ca_dir);
