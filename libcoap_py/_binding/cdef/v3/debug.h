/* coap_debug.h, libcoap 4.3. */
const char *coap_package_build(void);
char *coap_string_tls_support(char *buffer, size_t bufsize);
