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

/* The PKI key descriptions both generations share. */
typedef int... coap_pki_key_t;
typedef int... coap_asn1_privatekey_type_t;
typedef struct coap_pki_key_pem_t {
  const char *ca_file;
  const char *public_cert;
  const char *private_key;
} coap_pki_key_pem_t;
typedef struct coap_pki_key_asn1_t {
  const uint8_t *ca_cert;
  const uint8_t *public_cert;
  const uint8_t *private_key;
  size_t ca_cert_len;
  size_t public_cert_len;
  size_t private_key_len;
  coap_asn1_privatekey_type_t private_key_type;
} coap_pki_key_asn1_t;
