/* libcoap 4.3 integer typedefs (they must match the C types exactly). */
typedef int coap_mid_t;
typedef uint16_t coap_option_num_t;
typedef uint64_t coap_tick_t;
typedef struct coap_bin_const_t { size_t length; const uint8_t *s; } coap_bin_const_t;
