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
