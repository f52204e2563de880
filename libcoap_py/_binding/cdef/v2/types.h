/* libcoap 4.2 integer typedefs (they must match the C types exactly). */
typedef int coap_tid_t;
typedef uint64_t coap_tick_t;
typedef int... coap_proto_t;
