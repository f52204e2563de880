/* coap_event.h, libcoap 4.3. */
typedef int... coap_event_t;
/* Events 4.2 does not have: LCP_HAS_BLOCK_EVENTS and LCP_HAS_SERVER_SESSION_EVENTS
 * (glue.h) say so. */
static const int LCP_HAS_BLOCK_EVENTS;
static const int COAP_EVENT_PARTIAL_BLOCK;
static const int COAP_EVENT_XMIT_BLOCK_FAIL;
static const int COAP_EVENT_SERVER_SESSION_NEW;
static const int COAP_EVENT_SERVER_SESSION_DEL;

typedef int (*coap_event_handler_t)(coap_session_t *session, const coap_event_t event);
void coap_register_event_handler(coap_context_t *context, coap_event_handler_t hnd);
