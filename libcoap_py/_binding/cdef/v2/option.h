/* option.h, libcoap 4.2. */
unsigned int coap_decode_var_bytes(const uint8_t *buf, unsigned int length);
