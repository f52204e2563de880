/* coap_dtls.h, libcoap 4.3: the setup structures of the C sample. */
static const int COAP_DTLS_CPSK_SETUP_VERSION;
static const int COAP_DTLS_SPSK_SETUP_VERSION;

typedef int... coap_tls_library_t;
typedef struct coap_tls_version_t {
  uint64_t version;
  coap_tls_library_t type;
  uint64_t built_version;
} coap_tls_version_t;
coap_tls_version_t *coap_get_tls_library_version(void);



typedef struct coap_pki_key_pem_buf_t {
  const uint8_t *ca_cert;
  const uint8_t *public_cert;
  const uint8_t *private_key;
  size_t ca_cert_len;
  size_t public_cert_len;
  size_t private_key_len;
} coap_pki_key_pem_buf_t;


typedef struct coap_pki_key_pkcs11_t {
  const char *ca;
  const char *public_cert;
  const char *private_key;
  const char *user_pin;
} coap_pki_key_pkcs11_t;

/* @since 4.3.5 */
typedef union { const char *s_byte; const uint8_t *u_byte; } coap_const_char_ptr_t;
typedef int... coap_pki_define_t;
typedef struct coap_pki_key_define_t {
  coap_const_char_ptr_t ca;
  coap_const_char_ptr_t public_cert;
  coap_const_char_ptr_t private_key;
  size_t ca_len;
  size_t public_cert_len;
  size_t private_key_len;
  coap_pki_define_t ca_def;
  coap_pki_define_t public_cert_def;
  coap_pki_define_t private_key_def;
  coap_asn1_privatekey_type_t private_key_type;
  const char *user_pin;
} coap_pki_key_define_t;
/* @end */

typedef struct coap_dtls_key_t {
  coap_pki_key_t key_type;
  union {
    coap_pki_key_pem_t pem;
    coap_pki_key_pem_buf_t pem_buf;
    coap_pki_key_asn1_t asn1;
    coap_pki_key_pkcs11_t pkcs11;
/* @since 4.3.5 */
    coap_pki_key_define_t define;   /* a new union member: the union grew */
/* @end */
  } key;
} coap_dtls_key_t;

typedef struct coap_dtls_pki_t {
  uint8_t version;
  uint8_t verify_peer_cert;
  uint8_t check_common_ca;
  uint8_t allow_self_signed;
  uint8_t allow_expired_certs;
  uint8_t cert_chain_validation;
  uint8_t cert_chain_verify_depth;
  uint8_t check_cert_revocation;
  uint8_t allow_no_crl;
  uint8_t allow_expired_crl;
  uint8_t allow_bad_md_hash;
  uint8_t allow_short_rsa_length;
  uint8_t is_rpk_not_cert;
/* @since 4.3.5 */
  uint8_t use_cid;
/* @end */
  char *client_sni;
  coap_dtls_key_t pki_key;
  ...;
} coap_dtls_pki_t;

typedef struct coap_dtls_cpsk_info_t {
  coap_bin_const_t identity;
  coap_bin_const_t key;
} coap_dtls_cpsk_info_t;

typedef struct coap_dtls_cpsk_t {
  uint8_t version;
  char *client_sni;
  coap_dtls_cpsk_info_t psk_info;
  ...;
} coap_dtls_cpsk_t;

int coap_context_set_pki_root_cas(coap_context_t *context, const char *ca_file,
                                  const char *ca_dir);

typedef struct coap_dtls_spsk_info_t {
  coap_bin_const_t hint;
  coap_bin_const_t key;
} coap_dtls_spsk_info_t;

typedef struct coap_dtls_spsk_t {
  uint8_t version;
  void *id_call_back_arg;
  void *sni_call_back_arg;
  coap_dtls_spsk_info_t psk_info;
  ...;
} coap_dtls_spsk_t;
static const int COAP_PKI_KEY_PEM_BUF;
static const int COAP_TLS_LIBRARY_MBEDTLS;
