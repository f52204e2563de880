/*
 * libcoap_py/_glue.c: the only C that libcoap-py writes.
 *
 * build_ffi.py puts this after "#define LCP_GENERATION n" and the libcoap
 * header, and cffi compiles it into libcoap_py._libcoap. Everything that
 * differs between libcoap generations (4.2 = 2, 4.3 = 3) is hidden here
 * behind lcp_* functions with one signature; the Python layer above never
 * asks which libcoap it runs on.
 *
 * Ownership, as the Python layer relies on it:
 *  - lcp_new_request() returns a PDU the caller owns until lcp_send(),
 *    which always consumes it (libcoap frees it on failure too).
 *  - PDUs handed to the lcp_py_* callbacks are borrowed for the call.
 *  - Sessions from lcp_client_session*() hold one reference, dropped with
 *    coap_session_release().
 */

#include <string.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>

/* Mirrors of the structures declared in _cdef/glue.h. */
typedef struct {
  int verify_peer_cert;
  int require_peer_cert;
  int allow_self_signed;
  int allow_expired_certs;
  int cert_chain_validation;
  int cert_chain_verify_depth;
  int check_cert_revocation;
  int use_buffers;
  const char *cert_file;
  const char *key_file;
  const char *ca_file;
  const uint8_t *cert_buf;
  size_t cert_len;
  const uint8_t *key_buf;
  size_t key_len;
  const uint8_t *ca_buf;
  size_t ca_len;
  const char *client_sni;
  void *cn_arg;
} lcp_pki_t;

typedef struct {
  int type;
  int code;
  int mid;
  const uint8_t *token;
  size_t token_len;
  const uint8_t *payload;
  size_t payload_len;
} lcp_pdu_info_t;

/* The extern "Python" callbacks are defined by cffi further down. */
static int lcp_py_response(coap_session_t *session, const coap_pdu_t *sent,
                           const coap_pdu_t *received, int mid);
static void lcp_py_nack(coap_session_t *session, const coap_pdu_t *sent,
                        int reason, int mid);
static void lcp_py_event(coap_session_t *session, int event);
static void lcp_py_log(int level, const char *message);
static int lcp_py_cn(coap_session_t *session, const char *cn,
                     unsigned int depth, int validated, void *arg);
static const coap_bin_const_t *lcp_py_psk_key(coap_session_t *session,
                                              const uint8_t *identity,
                                              size_t identity_len, void *arg);
static void lcp_py_request(coap_resource_t *resource, coap_session_t *session,
                           const coap_pdu_t *request, coap_pdu_t *response);

#if LCP_GENERATION >= 3
#define LCP_HAS_PEM_BUF 1
#define LCP_HAS_CLIENT_SNI 1
#else
#error "libcoap 4.2 glue is not written yet (see the libcoap 4.2 issue)"
#endif

/* ------------------------------------------------------------------ */
/* Callback trampolines: native signatures in, uniform signatures out. */

#if LCP_GENERATION >= 3
static coap_response_t
lcp_on_response(coap_session_t *session, const coap_pdu_t *sent,
                const coap_pdu_t *received, const coap_mid_t mid) {
  return lcp_py_response(session, sent, received, (int)mid)
           ? COAP_RESPONSE_OK : COAP_RESPONSE_FAIL;
}

static void
lcp_on_nack(coap_session_t *session, const coap_pdu_t *sent,
            const coap_nack_reason_t reason, const coap_mid_t mid) {
  lcp_py_nack(session, sent, (int)reason, (int)mid);
}

static int
lcp_on_event(coap_session_t *session, const coap_event_t event) {
  lcp_py_event(session, (int)event);
  return 0;
}

static int
lcp_on_cn(const char *cn, const uint8_t *asn1_public_cert, size_t asn1_length,
          coap_session_t *session, unsigned int depth, int validated, void *arg) {
  (void)asn1_public_cert;
  (void)asn1_length;
  return lcp_py_cn(session, cn, depth, validated, arg);
}

static const coap_bin_const_t *
lcp_on_psk_id(coap_bin_const_t *identity, coap_session_t *session, void *arg) {
  return lcp_py_psk_key(session, identity->s, identity->length, arg);
}

static void
lcp_on_request(coap_resource_t *resource, coap_session_t *session,
               const coap_pdu_t *request, const coap_string_t *query,
               coap_pdu_t *response) {
  (void)query; /* the Python side reads Uri-Query from the request */
  lcp_py_request(resource, session, request, response);
}
#endif

static void
lcp_on_log(coap_log_t level, const char *message) {
  lcp_py_log((int)level, message);
}

/* ------------------------------------------------------------------ */
/* Context */

coap_context_t *
lcp_new_context(void *app_data) {
  coap_context_t *ctx = coap_new_context(NULL);
  if (!ctx)
    return NULL;
  coap_set_app_data(ctx, app_data);
  coap_register_response_handler(ctx, lcp_on_response);
  coap_register_nack_handler(ctx, lcp_on_nack);
  coap_register_event_handler(ctx, lcp_on_event);
  return ctx;
}

void
lcp_install_log_handler(void) {
  coap_set_log_handler(lcp_on_log);
}

/* timeout_ms < 0: wait until something happens; 0: poll; > 0: at most that. */
int
lcp_io_process(coap_context_t *ctx, int timeout_ms) {
  uint32_t t;
  if (timeout_ms < 0)
    t = COAP_IO_WAIT;
  else if (timeout_ms == 0)
    t = COAP_IO_NO_WAIT;
  else
    t = (uint32_t)timeout_ms;
#if LCP_GENERATION >= 3
  return coap_io_process(ctx, t);
#endif
}

/* ------------------------------------------------------------------ */
/* Addresses */

int
lcp_address_set(coap_address_t *addr, const char *ip, uint16_t port) {
  struct addrinfo hints, *res = NULL;
  int ok = 0;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICHOST;
  coap_address_init(addr);
  if (getaddrinfo(ip, NULL, &hints, &res) != 0 || !res)
    return 0;
  if (res->ai_family == AF_INET && res->ai_addrlen <= sizeof(addr->addr)) {
    memcpy(&addr->addr.sin, res->ai_addr, res->ai_addrlen);
    addr->size = (socklen_t)sizeof(struct sockaddr_in);
    addr->addr.sin.sin_port = htons(port);
    ok = 1;
  } else if (res->ai_family == AF_INET6 && res->ai_addrlen <= sizeof(addr->addr)) {
    memcpy(&addr->addr.sin6, res->ai_addr, res->ai_addrlen);
    addr->size = (socklen_t)sizeof(struct sockaddr_in6);
    addr->addr.sin6.sin6_port = htons(port);
    ok = 1;
  }
  freeaddrinfo(res);
  return ok;
}

int
lcp_address_format(const coap_address_t *addr, char *ip, size_t iplen,
                   uint16_t *port) {
  const void *src;
  int family = addr->addr.sa.sa_family;
  if (family == AF_INET) {
    src = &addr->addr.sin.sin_addr;
    *port = ntohs(addr->addr.sin.sin_port);
  } else if (family == AF_INET6) {
    src = &addr->addr.sin6.sin6_addr;
    *port = ntohs(addr->addr.sin6.sin6_port);
  } else {
    return 0;
  }
  return inet_ntop(family, src, ip, (socklen_t)iplen) != NULL;
}

/* ------------------------------------------------------------------ */
/* Sessions */

coap_session_t *
lcp_client_session(coap_context_t *ctx, const coap_address_t *local,
                   const coap_address_t *server, int proto) {
  return coap_new_client_session(ctx, local, server, (coap_proto_t)proto);
}

coap_session_t *
lcp_client_session_psk(coap_context_t *ctx, const coap_address_t *local,
                       const coap_address_t *server, int proto,
                       const uint8_t *identity, size_t identity_len,
                       const uint8_t *key, size_t key_len,
                       const char *client_sni) {
#if LCP_GENERATION >= 3
  coap_dtls_cpsk_t setup;
  memset(&setup, 0, sizeof(setup));
  setup.version = COAP_DTLS_CPSK_SETUP_VERSION;
  setup.client_sni = (char *)client_sni;
  setup.psk_info.identity.s = identity;
  setup.psk_info.identity.length = identity_len;
  setup.psk_info.key.s = key;
  setup.psk_info.key.length = key_len;
  return coap_new_client_session_psk2(ctx, local, server, (coap_proto_t)proto,
                                      &setup);
#endif
}

static void
lcp_fill_pki(coap_dtls_pki_t *setup, const lcp_pki_t *pki) {
  memset(setup, 0, sizeof(*setup));
  setup->version = COAP_DTLS_PKI_SETUP_VERSION;
  setup->verify_peer_cert = (uint8_t)pki->verify_peer_cert;
#if LCP_GENERATION >= 3
  /* 4.2's require_peer_cert sits where 4.3 has check_common_ca: without it
   * (and without root CAs) 4.3 has no trust anchor for the peer. */
  setup->check_common_ca = (uint8_t)pki->require_peer_cert;
  setup->client_sni = (char *)pki->client_sni;
#endif
  setup->allow_self_signed = (uint8_t)pki->allow_self_signed;
  setup->allow_expired_certs = (uint8_t)pki->allow_expired_certs;
  setup->cert_chain_validation = (uint8_t)pki->cert_chain_validation;
  setup->cert_chain_verify_depth = (uint8_t)pki->cert_chain_verify_depth;
  setup->check_cert_revocation = (uint8_t)pki->check_cert_revocation;
  setup->validate_cn_call_back = lcp_on_cn;
  setup->cn_call_back_arg = pki->cn_arg;
  if (pki->use_buffers) {
    setup->pki_key.key_type = COAP_PKI_KEY_PEM_BUF;
    setup->pki_key.key.pem_buf.public_cert = pki->cert_buf;
    setup->pki_key.key.pem_buf.public_cert_len = pki->cert_len;
    setup->pki_key.key.pem_buf.private_key = pki->key_buf;
    setup->pki_key.key.pem_buf.private_key_len = pki->key_len;
    setup->pki_key.key.pem_buf.ca_cert = pki->ca_buf;
    setup->pki_key.key.pem_buf.ca_cert_len = pki->ca_len;
  } else {
    setup->pki_key.key_type = COAP_PKI_KEY_PEM;
    setup->pki_key.key.pem.public_cert = pki->cert_file;
    setup->pki_key.key.pem.private_key = pki->key_file;
    setup->pki_key.key.pem.ca_file = pki->ca_file;
  }
}

coap_session_t *
lcp_client_session_pki(coap_context_t *ctx, const coap_address_t *local,
                       const coap_address_t *server, int proto,
                       const lcp_pki_t *pki) {
  coap_dtls_pki_t setup;
  lcp_fill_pki(&setup, pki);
  return coap_new_client_session_pki(ctx, local, server, (coap_proto_t)proto,
                                     &setup);
}

/* The session's PSK identity (server side: what the client sent). */
int
lcp_session_psk_identity(const coap_session_t *session, const uint8_t **identity,
                         size_t *length) {
#if LCP_GENERATION >= 3
  const coap_bin_const_t *id = coap_session_get_psk_identity(session);
  if (!id || !id->s)
    return 0;
  *identity = id->s;
  *length = id->length;
  return 1;
#endif
}

int
lcp_session_is_server(const coap_session_t *session) {
#if LCP_GENERATION >= 3
  return coap_session_get_type(session) == COAP_SESSION_TYPE_SERVER;
#endif
}

/* ------------------------------------------------------------------ */
/* Server side */

int
lcp_context_set_pki(coap_context_t *ctx, const lcp_pki_t *pki) {
  coap_dtls_pki_t setup;
  lcp_fill_pki(&setup, pki);
  return coap_context_set_pki(ctx, &setup);
}

int
lcp_context_set_psk(coap_context_t *ctx, const uint8_t *hint, size_t hint_len,
                    const uint8_t *key, size_t key_len, void *id_arg) {
#if LCP_GENERATION >= 3
  coap_dtls_spsk_t setup;
  memset(&setup, 0, sizeof(setup));
  setup.version = COAP_DTLS_SPSK_SETUP_VERSION;
  setup.validate_id_call_back = lcp_on_psk_id;
  setup.id_call_back_arg = id_arg;
  setup.psk_info.hint.s = hint;
  setup.psk_info.hint.length = hint_len;
  setup.psk_info.key.s = key;
  setup.psk_info.key.length = key_len;
  return coap_context_set_psk2(ctx, &setup);
#endif
}

coap_endpoint_t *
lcp_new_endpoint(coap_context_t *ctx, const coap_address_t *addr, int proto) {
  return coap_new_endpoint(ctx, addr, (coap_proto_t)proto);
}

coap_resource_t *
lcp_resource_new(const uint8_t *path, size_t len, void *app_data) {
  coap_resource_t *r;
  coap_str_const_t *uri = coap_new_str_const(path, len);
  if (!uri)
    return NULL;
  r = coap_resource_init(uri, COAP_RESOURCE_FLAGS_RELEASE_URI);
  if (!r) {
    coap_delete_str_const(uri);
    return NULL;
  }
  coap_resource_set_userdata(r, app_data);
  return r;
}

coap_resource_t *
lcp_resource_unknown_new(void *app_data) {
#if LCP_GENERATION >= 3
  coap_resource_t *r = coap_resource_unknown_init2(lcp_on_request, 0);
#endif
  if (r)
    coap_resource_set_userdata(r, app_data);
  return r;
}

void
lcp_resource_handle(coap_resource_t *resource, int method) {
  coap_register_handler(resource, (coap_request_t)method, lcp_on_request);
}

/* The app data of the session's context (the Python Context's handle). */
void *
lcp_session_context_app_data(const coap_session_t *session) {
#if LCP_GENERATION >= 3
  return coap_get_app_data(coap_session_get_context(session));
#endif
}

int
lcp_session_address(const coap_session_t *session, int remote, char *ip,
                    size_t iplen, uint16_t *port) {
#if LCP_GENERATION >= 3
  const coap_address_t *addr = remote ? coap_session_get_addr_remote(session)
                                      : coap_session_get_addr_local(session);
#endif
  if (!addr)
    return 0;
  return lcp_address_format(addr, ip, iplen, port);
}

int
lcp_session_state(const coap_session_t *session) {
#if LCP_GENERATION >= 3
  return (int)coap_session_get_state(session);
#endif
}

int
lcp_session_proto(const coap_session_t *session) {
#if LCP_GENERATION >= 3
  return (int)coap_session_get_proto(session);
#endif
}

void
lcp_session_set_ack_timeout_ms(coap_session_t *session, unsigned int ms) {
  coap_fixed_point_t value;
  value.integer_part = (uint16_t)(ms / 1000);
  value.fractional_part = (uint16_t)(ms % 1000);
  coap_session_set_ack_timeout(session, value);
}

unsigned int
lcp_session_get_ack_timeout_ms(const coap_session_t *session) {
  coap_fixed_point_t value = coap_session_get_ack_timeout(session);
  return value.integer_part * 1000u + value.fractional_part;
}

unsigned int
lcp_session_get_ack_random_factor_milli(const coap_session_t *session) {
  coap_fixed_point_t value = coap_session_get_ack_random_factor(session);
  return value.integer_part * 1000u + value.fractional_part;
}

void
lcp_session_set_max_retransmit(coap_session_t *session, unsigned int value) {
  coap_session_set_max_retransmit(session, (uint16_t)value);
}

unsigned int
lcp_session_get_max_retransmit(const coap_session_t *session) {
  return coap_session_get_max_retransmit(session);
}

/* ------------------------------------------------------------------ */
/* PDUs */

coap_pdu_t *
lcp_new_request(coap_session_t *session, int type, int code,
                uint8_t *token_out, size_t *token_len) {
#if LCP_GENERATION >= 3
  coap_pdu_t *pdu = coap_new_pdu((coap_pdu_type_t)type, (coap_pdu_code_t)code,
                                 session);
  if (!pdu)
    return NULL;
  coap_session_new_token(session, token_len, token_out);
  if (!coap_add_token(pdu, *token_len, token_out)) {
    coap_delete_pdu(pdu);
    return NULL;
  }
  return pdu;
#endif
}

int
lcp_add_option(coap_pdu_t *pdu, uint16_t number, const uint8_t *value,
               size_t len) {
  return coap_add_option(pdu, number, len, value) != 0;
}

int
lcp_pdu_info(const coap_pdu_t *pdu, lcp_pdu_info_t *out) {
#if LCP_GENERATION >= 3
  coap_bin_const_t token = coap_pdu_get_token(pdu);
  out->type = (int)coap_pdu_get_type(pdu);
  out->code = (int)coap_pdu_get_code(pdu);
  out->mid = (int)coap_pdu_get_mid(pdu);
  out->token = token.s;
  out->token_len = token.length;
#endif
  if (!coap_get_data(pdu, &out->payload_len, &out->payload)) {
    out->payload = NULL;
    out->payload_len = 0;
  }
  return 1;
}

size_t
lcp_pdu_options(const coap_pdu_t *pdu, uint16_t *numbers,
                const uint8_t **values, size_t *lengths, size_t max) {
  coap_opt_iterator_t it;
  coap_opt_t *opt;
  size_t n = 0;
  if (!coap_option_iterator_init(pdu, &it, NULL))
    return 0;
  while ((opt = coap_option_next(&it)) != NULL) {
    if (n < max) {
      numbers[n] = (uint16_t)it.number;
      values[n] = coap_opt_value(opt);
      lengths[n] = coap_opt_length(opt);
    }
    n++;
  }
  return n; /* may exceed max: the caller retries with room for n */
}

void
lcp_pdu_set_type(coap_pdu_t *pdu, int type) {
#if LCP_GENERATION >= 3
  coap_pdu_set_type(pdu, (coap_pdu_type_t)type);
#endif
}

void
lcp_pdu_set_code(coap_pdu_t *pdu, int code) {
#if LCP_GENERATION >= 3
  coap_pdu_set_code(pdu, (coap_pdu_code_t)code);
#endif
}

int
lcp_send(coap_session_t *session, coap_pdu_t *pdu) {
  return (int)coap_send(session, pdu);
}

/* ------------------------------------------------------------------ */
/* Library information */

const char *
lcp_tls_library_name(void) {
#if LCP_GENERATION >= 3
  switch (coap_get_tls_library_version()->type) {
  case COAP_TLS_LIBRARY_TINYDTLS: return "TinyDTLS";
  case COAP_TLS_LIBRARY_OPENSSL: return "OpenSSL";
  case COAP_TLS_LIBRARY_GNUTLS: return "GnuTLS";
  case COAP_TLS_LIBRARY_MBEDTLS: return "Mbed TLS";
  default: return "none";
  }
#endif
}

uint64_t
lcp_tls_library_version(void) {
#if LCP_GENERATION >= 3
  return coap_get_tls_library_version()->version;
#endif
}
