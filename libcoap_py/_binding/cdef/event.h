/* coap_event.h, shared part. */
static const int COAP_EVENT_DTLS_CLOSED;
static const int COAP_EVENT_DTLS_CONNECTED;
static const int COAP_EVENT_DTLS_RENEGOTIATE;
static const int COAP_EVENT_DTLS_ERROR;
static const int COAP_EVENT_TCP_CONNECTED;
static const int COAP_EVENT_TCP_CLOSED;
static const int COAP_EVENT_TCP_FAILED;
static const int COAP_EVENT_SESSION_CONNECTED;
static const int COAP_EVENT_SESSION_CLOSED;
static const int COAP_EVENT_SESSION_FAILED;
