/* coap_event.h, libcoap 4.2. */
typedef unsigned int coap_event_t;
/* 0: libcoap 4.2 has no block-wise events (COAP_EVENT_PARTIAL_BLOCK, ...: v3/event.h). */
static const int LCP_HAS_BLOCK_EVENTS;
