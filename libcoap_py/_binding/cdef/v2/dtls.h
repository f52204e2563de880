/* coap_dtls.h, libcoap 4.2: the setup structure of the C sample (as it was written). */
typedef int... coap_tls_library_t;
typedef struct coap_tls_version_t {
  uint64_t version;
  coap_tls_library_t type;
  ...;
} coap_tls_version_t;
coap_tls_version_t *coap_get_tls_library_version(void);



typedef struct coap_dtls_key_t {
  coap_pki_key_t key_type;
  union {
    coap_pki_key_pem_t pem;
    coap_pki_key_asn1_t asn1;
  } key;
} coap_dtls_key_t;

typedef struct coap_dtls_pki_t {
  uint8_t version;
  uint8_t verify_peer_cert;
  uint8_t require_peer_cert;
  uint8_t allow_self_signed;
  uint8_t allow_expired_certs;
  uint8_t cert_chain_validation;
  uint8_t cert_chain_verify_depth;
  uint8_t check_cert_revocation;
  uint8_t allow_no_crl;
  uint8_t allow_expired_crl;
  char *client_sni;
  coap_dtls_key_t pki_key;
  ...;
} coap_dtls_pki_t;
