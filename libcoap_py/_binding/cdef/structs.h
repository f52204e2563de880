/* The structures the Python side and glue.c share, written once: build_ffi.py
 * gives this file to cffi's cdef (before glue.h) and puts it into the C source
 * (before glue.c). Plain C only: no preprocessor lines, no cffi "...". */

/* Bytes handed back to libcoap (a PSK key); the layout of 4.3's coap_bin_const_t. */
typedef struct { size_t length; const uint8_t *s; } lcp_bin_t;

/* A PDU's fields, as lcp_pdu_info() reads them. */
typedef struct {
  int type;
  int code;
  int mid;
  const uint8_t *token;
  size_t token_len;
  const uint8_t *payload;
  size_t payload_len;
} lcp_pdu_info_t;

/* A certificate setup (lcp_client_session_pki, lcp_context_set_pki). */
typedef struct {
  int verify_peer_cert;
  int require_peer_cert;
  int allow_self_signed;
  int allow_expired_certs;
  int cert_chain_validation;
  int cert_chain_verify_depth;
  int check_cert_revocation;
  int allow_no_crl;
  int allow_expired_crl;
  int use_buffers;          /* 0: the three paths, 1: the three PEM buffers */
  const char *cert_file;
  const char *key_file;
  const char *ca_file;
  const uint8_t *cert_buf;
  size_t cert_len;
  const uint8_t *key_buf;
  size_t key_len;
  const uint8_t *ca_buf;
  size_t ca_len;
  const char *client_sni;   /* may be NULL */
  void *cn_arg;             /* passed to lcp_py_cn (the Python PeerCheck's handle) */
} lcp_pki_t;

/* A request as the server fast path reads it (lcp_serve_read). */
typedef struct {
  void *session_data;
  int code;
  int type;
  int mid;
  const char *token;
  size_t token_len;
  const char *payload;
  size_t payload_len;
  size_t options_len;
  int blocks;
} lcp_serve_info_t;

/* A one-shot request's claim on its answer (lcp_send_claimed; see glue.c's
 * "Claims"). libcoap's response and NACK handlers fill a matching claim, with
 * no call into Python; the exchange engine (_exchange.py) reads it after the
 * pass. The fields up to data are the answer; the rest is glue.c's own. */
typedef struct lcp_claim lcp_claim_t;
struct lcp_claim {
  int state;                /* 0: armed (or idle), 1: answered, 2: NACKed */
  int nack_reason;          /* state 2 */
  int code;                 /* the response's (state 1) */
  int type;
  int mid;
  size_t token_len;         /* the request's (a response's is the same) */
  size_t payload_len;
  uint8_t *data;            /* the token, the payload, then the options packed as */
  size_t data_len;          /* lcp_pdu_pack_options() packs them */
  uint8_t token[8];
  int request_mid;
  double sent_at;           /* when it was sent: CLOCK_MONOTONIC seconds */
  const void *session;      /* NULL: not armed */
  size_t cap;               /* of data */
  lcp_claim_t *next;
  lcp_claim_t **home;       /* the armed list it is on (its thread's) */
  int orphan;               /* freed by Python on another thread while armed */
  uint8_t inline_data[512]; /* data, when it fits */
};
