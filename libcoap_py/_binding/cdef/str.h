/* str.h */
typedef struct coap_string_t { size_t length; uint8_t *s; } coap_string_t;
typedef struct coap_str_const_t { size_t length; const uint8_t *s; } coap_str_const_t;
typedef struct coap_binary_t { size_t length; uint8_t *s; } coap_binary_t;

void coap_delete_string(coap_string_t *string);
