/* coap_dtls.h, shared part. */
static const int COAP_TLS_LIBRARY_NOTLS;
static const int COAP_TLS_LIBRARY_TINYDTLS;
static const int COAP_TLS_LIBRARY_OPENSSL;
static const int COAP_TLS_LIBRARY_GNUTLS;

static const int COAP_PKI_KEY_PEM;
static const int COAP_PKI_KEY_ASN1;
static const int COAP_DTLS_PKI_SETUP_VERSION;

int coap_dtls_is_supported(void);
int coap_tls_is_supported(void);
void coap_dtls_set_log_level(int level);
int coap_dtls_get_log_level(void);
