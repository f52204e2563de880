/* coap_event.h, libcoap 4.2. */
typedef unsigned int coap_event_t;
