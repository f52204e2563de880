/*
 * libcoap_py/_binding/glue.c: the only C that libcoap-py writes.
 *
 * build_ffi.py puts this after "#define LCP_GENERATION n" and the libcoap
 * header, and cffi compiles it into libcoap_py._binding._libcoap. Everything that
 * differs between libcoap generations (4.2 = 2, 4.3 = 3) is hidden here
 * behind lcp_* functions with one signature; the Python layer above never
 * asks which libcoap it runs on, only the LCP_HAS_* feature flags.
 *
 * Layout: the generation-specific primitives first (one block per
 * generation, the same names in both), then the lcp_* functions built on
 * them.
 *
 * Ownership, as the Python layer relies on it:
 *  - lcp_new_request() returns a PDU the caller owns until coap_send(),
 *    which always consumes it (libcoap frees it on failure too).
 *  - PDUs handed to the lcp_py_* callbacks are borrowed for the call.
 *  - Sessions from lcp_client_session*() hold one reference, dropped with
 *    coap_session_release(). Server sessions belong to libcoap.
 */

#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <stddef.h>
#include <limits.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>
#include <sys/epoll.h>
#include <stdint.h>

/* lcp_bin_t, lcp_pdu_info_t, lcp_pki_t and lcp_serve_info_t: cdef/structs.h,
 * which build_ffi.py puts before this file. */

/* The extern "Python" callbacks are defined by cffi further down. */
void *lcp_session_context_app_data(const coap_session_t *session);
static int lcp_py_response(void *session_data, void *context_data,
                           const coap_pdu_t *sent, lcp_pdu_info_t *sent_info,
                           const coap_pdu_t *received, lcp_pdu_info_t *info, int mid);
void lcp_pdu_info(const coap_pdu_t *pdu, lcp_pdu_info_t *out);
/* A one-shot request waiting for this answer (see "Claims" below). */
static int lcp_claim_take(const coap_session_t *session, const coap_pdu_t *received,
                          const lcp_pdu_info_t *info);
static int lcp_claim_nack(const coap_session_t *session, const coap_pdu_t *sent,
                          int reason, int mid);
static int lcp_io(coap_context_t *ctx, int timeout_ms);

static void lcp_py_nack(coap_session_t *session, const coap_pdu_t *sent,
                        int reason, int mid);
static void lcp_py_event(coap_session_t *session, int event);
static void lcp_py_log(int level, const char *message, int during_io);
static int lcp_py_cn(coap_session_t *session, const char *cn,
                     const uint8_t *der, size_t der_len,
                     unsigned int depth, int validated, void *arg);
static const lcp_bin_t *lcp_py_psk_key(coap_session_t *session,
                                       const uint8_t *identity,
                                       size_t identity_len, void *arg);
static void lcp_py_request(coap_resource_t *resource, coap_session_t *session,
                           const coap_pdu_t *request, const void *query,
                           coap_pdu_t *response);


/* Calls into Python (the trampolines) made by this thread: lcp_io_wait hands back
 * to Python after a pass that made one, for its after_io. */
static __thread unsigned int lcp_py_calls;

/* A response, to Python (lcp_py_response) with the fields of both PDUs read. */
static int
lcp_response_to_python(coap_session_t *session, const coap_pdu_t *sent,
                       const coap_pdu_t *received, lcp_pdu_info_t *info, int mid) {
  lcp_pdu_info_t sent_info;
  if (sent)
    lcp_pdu_info(sent, &sent_info);
  lcp_py_calls++;
  return lcp_py_response(coap_session_get_app_data(session),
                         lcp_session_context_app_data(session), sent,
                         sent ? &sent_info : NULL, received, info, mid);
}


/* libcoap's certificate check (every backend calls it inside the handshake, so
 * a 0 aborts the handshake before a queued request is sent): asn1_public_cert
 * is the DER certificate at depth (0: the peer's own), which Python checks the
 * server's name against (dtls.py). */
static int
lcp_on_cn(const char *cn, const uint8_t *asn1_public_cert, size_t asn1_length,
          coap_session_t *session, unsigned int depth, int validated, void *arg) {
  lcp_py_calls++;
  return lcp_py_cn(session, cn, asn1_public_cert, asn1_length, depth, validated, arg);
}

/* Nonzero while this thread is inside libcoap's I/O processing (lcp_io): what
 * libcoap logs then comes from traffic and timers, which a remote peer may
 * drive; what it logs outside comes from the application's own calls. The
 * Python side rate-limits only the former (log.py). */
static __thread int lcp_in_io;


static void
lcp_on_log(coap_log_t level, const char *message) {
  lcp_py_calls++;
  lcp_py_log((int)level, message, lcp_in_io);
}

#if LCP_GENERATION >= 3
/* ================================================================== */
/* libcoap 4.3                                                         */

#define LCP_HAS_PEM_BUF 1
#define LCP_HAS_CLIENT_SNI 1
#define LCP_HAS_PSK_CLIENT_SNI 1
#define LCP_HAS_BINARY_PSK_IDENTITY 1
#define LCP_HAS_BLOCK 1
#define LCP_HAS_CLIENT_OBSERVE 1
#define LCP_HAS_SERVER_OBSERVE 1
#define LCP_HAS_CANCEL_OBSERVE 1
#define LCP_NOTIFY_WITHOUT_REQUEST 0
/* 4.3.1's coap_notify_observers frees the observer when the handler answers a
 * notification with an error, then still uses it (fixed in 4.3.2). */
#define LCP_NOTIFY_ERROR_UNSAFE (LIBCOAP_VERSION < 4003002U)
/* libcoap drops a response that carries an unknown critical option itself. */
#define LCP_DROPS_UNKNOWN_CRITICAL_RESPONSE 1
#define LCP_HAS_SERVER_SESSION_EVENTS 1
#define LCP_HAS_PSK_IDENTITY_CALLBACK 1
/* Names of protocol numbers that 4.2 lacks (codes.py falls back on the numbers). */
#define LCP_HAS_EMPTY_CODE 1
#define LCP_HAS_OPTION_NAMES_43 1
#define LCP_HAS_MEDIATYPE_CWT 1
#define LCP_HAS_BLOCK_EVENTS 1
/* COAP_OPTION_Q_BLOCK1/2 came with 4.3.2 (declared "@since 4.3.2" in v3/pdu.h). */
#define LCP_HAS_Q_BLOCK_OPTIONS (LIBCOAP_VERSION >= 4003002U)

typedef char lcp_check_bin_layout[
  (sizeof(lcp_bin_t) == sizeof(coap_bin_const_t) &&
   offsetof(lcp_bin_t, s) == offsetof(coap_bin_const_t, s)) ? 1 : -1];

static coap_response_t
lcp_on_response(coap_session_t *session, const coap_pdu_t *sent,
                const coap_pdu_t *received, const coap_mid_t mid) {
  lcp_pdu_info_t info;
  lcp_pdu_info(received, &info);
  if (lcp_claim_take(session, received, &info))
    return COAP_RESPONSE_OK;
  return lcp_response_to_python(session, sent, received, &info, (int)mid)
           ? COAP_RESPONSE_OK : COAP_RESPONSE_FAIL;
}

static void
lcp_on_nack(coap_session_t *session, const coap_pdu_t *sent,
            const coap_nack_reason_t reason, const coap_mid_t mid) {
  if (!lcp_claim_nack(session, sent, (int)reason, (int)mid)) {
    lcp_py_calls++;
    lcp_py_nack(session, sent, (int)reason, (int)mid);
  }
}

static int
lcp_on_event(coap_session_t *session, const coap_event_t event) {
  lcp_py_calls++;
  lcp_py_event(session, (int)event);
  return 0;
}

static const coap_bin_const_t *
lcp_on_psk_id(coap_bin_const_t *identity, coap_session_t *session, void *arg) {
  lcp_py_calls++;
  return (const coap_bin_const_t *)lcp_py_psk_key(session, identity->s,
                                                  identity->length, arg);
}

static void
lcp_on_request(coap_resource_t *resource, coap_session_t *session,
               const coap_pdu_t *request, const coap_string_t *query,
               coap_pdu_t *response) {
  lcp_py_calls++;
  lcp_py_request(resource, session, request, query, response);
}

/* Block-wise transfers (RFC 7959). A session takes its block mode from the
 * context when it is made.
 * - Client sessions: libcoap sends Block1 uploads, fetches Block2 bodies and
 *   hands over whole bodies.
 * - Server sessions (made by libcoap when a datagram comes from a new peer):
 *   none; server.py reassembles Block1 and serves Block2 itself (BlockServer),
 *   as on 4.2. libcoap's server-side reassembly crashes on hostile input:
 *   4.3.1 to 4.3.4 dereference a body they never built (a Block1 upload with
 *   no Size1 on 4.3.1, or an empty first block), and 4.3.4 forces it on for
 *   FETCH whatever the mode says.
 * So the context's mode is 0, and the client constructors below switch it on
 * while they make their session (lcp_client_blocks). */
#define LCP_CLIENT_BLOCK_MODE (COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY)

static void
lcp_client_blocks(coap_context_t *ctx, int on) {
  coap_context_set_block_mode(ctx, on ? LCP_CLIENT_BLOCK_MODE : 0);
}

static void
lcp_register(coap_context_t *ctx) {
  coap_register_response_handler(ctx, lcp_on_response);
  coap_register_nack_handler(ctx, lcp_on_nack);
  coap_register_event_handler(ctx, lcp_on_event);
  lcp_client_blocks(ctx, 0);
}

static void
lcp_release_copy(coap_session_t *session, void *data) {
  (void)session;
  free(data);
}

static int
lcp_large_request(coap_session_t *session, coap_pdu_t *pdu, const uint8_t *data,
                  size_t len) {
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy)
    return 0;
  memcpy(copy, data, len);
  if (!coap_add_data_large_request(session, pdu, len, copy, lcp_release_copy, copy)) {
    free(copy);
    return 0;
  }
  return 1;
}

static int
lcp_io_pass(coap_context_t *ctx, int timeout_ms) {
  uint32_t t = timeout_ms < 0 ? COAP_IO_WAIT
             : timeout_ms == 0 ? COAP_IO_NO_WAIT : (uint32_t)timeout_ms;
  return coap_io_process(ctx, t);
}

static coap_session_t *
lcp_psk_session(coap_context_t *ctx, const coap_address_t *local,
                const coap_address_t *server, int proto,
                const uint8_t *identity, size_t identity_len,
                const uint8_t *key, size_t key_len, const char *client_sni) {
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
}

static void
lcp_pki_generation(coap_dtls_pki_t *setup, const lcp_pki_t *pki) {
  /* 4.2's require_peer_cert sits where 4.3 has check_common_ca: without it
   * (and without root CAs) 4.3 has no trust anchor for the peer. */
  setup->check_common_ca = (uint8_t)pki->require_peer_cert;
  setup->client_sni = (char *)pki->client_sni;
  if (pki->use_buffers) {
    setup->pki_key.key_type = COAP_PKI_KEY_PEM_BUF;
    setup->pki_key.key.pem_buf.public_cert = pki->cert_buf;
    setup->pki_key.key.pem_buf.public_cert_len = pki->cert_len;
    setup->pki_key.key.pem_buf.private_key = pki->key_buf;
    setup->pki_key.key.pem_buf.private_key_len = pki->key_len;
    setup->pki_key.key.pem_buf.ca_cert = pki->ca_buf;
    setup->pki_key.key.pem_buf.ca_cert_len = pki->ca_len;
  }
}

static int
lcp_server_psk(coap_context_t *ctx, const uint8_t *hint, size_t hint_len,
               const uint8_t *key, size_t key_len, void *id_arg) {
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
}

static coap_resource_t *
lcp_unknown_resource(void) {
  return coap_resource_unknown_init2(lcp_on_request, 0);
}

static void
lcp_handle_method(coap_resource_t *resource, int method) {
  coap_register_handler(resource, (coap_request_t)method, lcp_on_request);
}

static coap_context_t *lcp_ctx_of(const coap_session_t *s) { return coap_session_get_context(s); }
static int lcp_state_of(const coap_session_t *s) { return (int)coap_session_get_state(s); }
static int lcp_proto_of(const coap_session_t *s) { return (int)coap_session_get_proto(s); }
static int lcp_is_server(const coap_session_t *s) {
  return coap_session_get_type(s) == COAP_SESSION_TYPE_SERVER;
}
static const coap_address_t *lcp_remote_of(const coap_session_t *s) {
  return coap_session_get_addr_remote(s);
}
static const coap_address_t *lcp_local_of(const coap_session_t *s) {
  return coap_session_get_addr_local(s);
}
static int
lcp_psk_identity_of(const coap_session_t *s, const uint8_t **id, size_t *len) {
  const coap_bin_const_t *identity = coap_session_get_psk_identity(s);
  if (!identity || !identity->s)
    return 0;
  *id = identity->s;
  *len = identity->length;
  return 1;
}
static unsigned int lcp_max_retransmit_of(const coap_session_t *s) {
  return coap_session_get_max_retransmit(s);
}

static coap_pdu_t *
lcp_pdu_and_token(coap_session_t *session, int type, int code, uint8_t *token,
            size_t *token_len) {
  coap_pdu_t *pdu = coap_new_pdu((coap_pdu_type_t)type, (coap_pdu_code_t)code,
                                 session);
  if (pdu)
    coap_session_new_token(session, token_len, token);
  return pdu;
}

void
lcp_pdu_info(const coap_pdu_t *pdu, lcp_pdu_info_t *out) {
  coap_bin_const_t token = coap_pdu_get_token(pdu);
  out->type = (int)coap_pdu_get_type(pdu);
  out->code = (int)coap_pdu_get_code(pdu);
  out->mid = (int)coap_pdu_get_mid(pdu);
  out->token = token.s;
  out->token_len = token.length;
  {
    size_t offset = 0, total = 0;
    if (!coap_get_data_large(pdu, &out->payload_len, &out->payload, &offset, &total)) {
      out->payload = NULL;
      out->payload_len = 0;
    }
  }
}

void lcp_pdu_set_type(coap_pdu_t *pdu, int type) {
  coap_pdu_set_type(pdu, (coap_pdu_type_t)type);
}
void lcp_pdu_set_code(coap_pdu_t *pdu, int code) {
  coap_pdu_set_code(pdu, (coap_pdu_code_t)code);
}
void lcp_pdu_set_mid(coap_pdu_t *pdu, int mid) { coap_pdu_set_mid(pdu, (coap_mid_t)mid); }

/* 4.3 tells us when it frees a server session (SERVER_SESSION_DEL). */
int
lcp_session_alive(coap_context_t *ctx, const coap_session_t *session,
                  const coap_address_t *remote, int ifindex) {
  (void)ctx;
  (void)session;
  (void)remote;
  (void)ifindex;
  return 1;
}

static int lcp_ifindex_of(const coap_session_t *s) { return coap_session_get_ifindex(s); }
#define LCP_OPT_NUMBER(it) ((it).number)

/* 4.3 adds the Observe option to responses and notifications itself. */
static int
lcp_observe_by_handler(coap_resource_t *resource, coap_session_t *session,
                       const uint8_t *token, size_t len, unsigned int *value) {
  (void)resource; (void)session; (void)token; (void)len; (void)value;
  return 0;
}

#else
/* ================================================================== */
/* libcoap 4.2                                                         */

#define LCP_HAS_PEM_BUF 0
#define LCP_HAS_CLIENT_SNI 1
#define LCP_HAS_PSK_CLIENT_SNI 0
#define LCP_HAS_BINARY_PSK_IDENTITY 0
#define LCP_HAS_BLOCK 0
#define LCP_HAS_CLIENT_OBSERVE 1
#define LCP_HAS_SERVER_OBSERVE 1
/* No coap_cancel_observe: the Python side sends the deregistering GET itself. */
#define LCP_HAS_CANCEL_OBSERVE 0
/* coap_notify_observers runs the GET handler with request == NULL. */
#define LCP_NOTIFY_WITHOUT_REQUEST 1
#define LCP_NOTIFY_ERROR_UNSAFE 0
/* 4.2 checks a separate response, not one piggybacked on the ACK. */
#define LCP_DROPS_UNKNOWN_CRITICAL_RESPONSE 0
#define LCP_HAS_SERVER_SESSION_EVENTS 0
#define LCP_HAS_PSK_IDENTITY_CALLBACK 1
/* No names for these protocol numbers in 4.2 (v2/pdu.h, v2/event.h). */
#define LCP_HAS_EMPTY_CODE 0
#define LCP_HAS_OPTION_NAMES_43 0
#define LCP_HAS_MEDIATYPE_CWT 0
#define LCP_HAS_BLOCK_EVENTS 0
#define LCP_HAS_Q_BLOCK_OPTIONS 0

static void
lcp_on_response(coap_context_t *ctx, coap_session_t *session, coap_pdu_t *sent,
                coap_pdu_t *received, const coap_tid_t id) {
  coap_opt_iterator_t it;
  (void)ctx;
  /* 4.2's handler returns nothing and libcoap has already ACKed a CON. A
   * response nobody wanted is rejected with RST as 4.3 does when it is a NON,
   * or a separate CON (a notification: RFC 7641, 3.6, the RST ends the server's
   * registration; 4.2 and 4.3 servers match it to the last notification). */
  lcp_pdu_info_t info;
  lcp_pdu_info(received, &info);
  if (lcp_claim_take(session, received, &info))
    return;
  if (!lcp_response_to_python(session, sent, received, &info, (int)id) &&
      (received->type == COAP_MESSAGE_NON ||
       (received->type == COAP_MESSAGE_CON &&
        (!sent || coap_check_option(received, COAP_OPTION_OBSERVE, &it)))))
    coap_send_message_type(session, received, COAP_MESSAGE_RST);
}

static void
lcp_on_nack(coap_context_t *ctx, coap_session_t *session, coap_pdu_t *sent,
            coap_nack_reason_t reason, const coap_tid_t id) {
  (void)ctx;
  if (!lcp_claim_nack(session, sent, (int)reason, (int)id)) {
    lcp_py_calls++;
    lcp_py_nack(session, sent, (int)reason, (int)id);
  }
}

static int
lcp_on_event(coap_context_t *ctx, coap_event_t event, coap_session_t *session) {
  (void)ctx;
  lcp_py_calls++;
  lcp_py_event(session, (int)event);
  return 0;
}

/* 4.2 asks the context for a server PSK through this hook. */
static size_t
lcp_on_server_psk(const coap_session_t *session, const uint8_t *identity,
                  size_t identity_len, uint8_t *psk, size_t max_psk_len) {
  coap_session_t *s = (coap_session_t *)session;
  const lcp_bin_t *key;
  /* 4.2 records the PSK identity only on client sessions: keep the client's
   * on the server session too (libcoap frees it with the session). */
  if (s->psk_identity) {
    coap_free(s->psk_identity);
    s->psk_identity = NULL;
    s->psk_identity_len = 0;
  }
  s->psk_identity = coap_malloc(identity_len ? identity_len : 1);
  if (s->psk_identity) {
    memcpy(s->psk_identity, identity, identity_len);
    s->psk_identity_len = identity_len;
  }
  lcp_py_calls++;
  key = lcp_py_psk_key(s, identity, identity_len, NULL);
  if (!key || !key->s || key->length > max_psk_len)
    return 0;
  memcpy(psk, key->s, key->length);
  return key->length;
}

static void
lcp_on_request(coap_context_t *ctx, struct coap_resource_t *resource,
               coap_session_t *session, coap_pdu_t *request,
               coap_binary_t *token, coap_string_t *query,
               coap_pdu_t *response) {
  (void)ctx;
  /* 4.2.1 puts the token into the response before the handler runs; add it
   * only where that has not happened. */
  if (response->used_size == 0 && token && token->length)
    coap_add_token(response, token->length, token->s);
  lcp_py_calls++;
  lcp_py_request(resource, session, request, query, response);
}

static void
lcp_register(coap_context_t *ctx) {
  coap_register_response_handler(ctx, lcp_on_response);
  coap_register_nack_handler(ctx, lcp_on_nack);
  coap_register_event_handler(ctx, lcp_on_event);
}

static void
lcp_client_blocks(coap_context_t *ctx, int on) {
  (void)ctx; (void)on; /* 4.2 has no block-wise support of its own */
}

static int
lcp_large_request(coap_session_t *session, coap_pdu_t *pdu, const uint8_t *data,
                  size_t len) {
  (void)session; (void)pdu; (void)data; (void)len;
  return 0; /* no block-wise support in 4.2's library: LCP_HAS_BLOCK is 0 */
}

static int
lcp_io_pass(coap_context_t *ctx, int timeout_ms) {
  /* coap_run_once: 0 (COAP_RUN_BLOCK) waits, COAP_RUN_NONBLOCK (1) polls. */
  unsigned int t = timeout_ms < 0 ? COAP_RUN_BLOCK
                 : timeout_ms == 0 ? COAP_RUN_NONBLOCK : (unsigned int)timeout_ms;
  return coap_run_once(ctx, t);
}

static coap_session_t *
lcp_psk_session(coap_context_t *ctx, const coap_address_t *local,
                const coap_address_t *server, int proto,
                const uint8_t *identity, size_t identity_len,
                const uint8_t *key, size_t key_len, const char *client_sni) {
  char id[129];
  (void)client_sni;
  if (identity_len >= sizeof(id) || memchr(identity, 0, identity_len))
    return NULL; /* 4.2 takes the identity as a C string */
  memcpy(id, identity, identity_len);
  id[identity_len] = '\0';
  return coap_new_client_session_psk(ctx, local, server, (coap_proto_t)proto,
                                     id, key, (unsigned)key_len);
}

static void
lcp_pki_generation(coap_dtls_pki_t *setup, const lcp_pki_t *pki) {
  setup->require_peer_cert = (uint8_t)pki->require_peer_cert;
  setup->client_sni = (char *)pki->client_sni;
  /* 4.2's OpenSSL glue lets allow_self_signed accept any self-signed root in
   * the peer's chain, even with a CA required; 4.3 ignores it then. Do as 4.3. */
  if (pki->require_peer_cert)
    setup->allow_self_signed = 0;
  /* No PEM buffers in 4.2: the Python layer passes files (LCP_HAS_PEM_BUF). */
}

static int
lcp_server_psk(coap_context_t *ctx, const uint8_t *hint, size_t hint_len,
               const uint8_t *key, size_t key_len, void *id_arg) {
  char hint_text[129];
  (void)id_arg; /* 4.2's hook has no argument: Python finds the PSK via the context */
  if (hint_len >= sizeof(hint_text))
    return 0;
  memcpy(hint_text, hint, hint_len);
  hint_text[hint_len] = '\0';
  if (!coap_context_set_psk(ctx, hint_text, key, key_len))
    return 0;
  ctx->get_server_psk = lcp_on_server_psk;
  return 1;
}

static coap_resource_t *
lcp_unknown_resource(void) {
  return coap_resource_unknown_init(lcp_on_request);
}

static void
lcp_handle_method(coap_resource_t *resource, int method) {
  coap_register_handler(resource, (unsigned char)method, lcp_on_request);
}

static coap_context_t *lcp_ctx_of(const coap_session_t *s) { return s->context; }
static int lcp_state_of(const coap_session_t *s) { return (int)s->state; }
static int lcp_proto_of(const coap_session_t *s) { return (int)s->proto; }
static int lcp_is_server(const coap_session_t *s) {
  return s->type == COAP_SESSION_TYPE_SERVER;
}
static const coap_address_t *lcp_remote_of(const coap_session_t *s) {
  return &s->addr_info.remote;
}
static const coap_address_t *lcp_local_of(const coap_session_t *s) {
  return &s->addr_info.local;
}
static int
lcp_psk_identity_of(const coap_session_t *s, const uint8_t **id, size_t *len) {
  if (!s->psk_identity)
    return 0;
  *id = s->psk_identity;
  *len = s->psk_identity_len;
  return 1;
}
static unsigned int lcp_max_retransmit_of(const coap_session_t *s) {
  return s->max_retransmit;
}
static int lcp_ifindex_of(const coap_session_t *s) { return s->ifindex; }
#define LCP_OPT_NUMBER(it) ((it).type)

/* 4.2 leaves the Observe option to the GET handler (its own example does it
 * in coap_add_data_blocked_response): add it when the session observes the
 * resource with this token. handle_request registers the observer before the
 * handler runs; coap_notify_observers runs the handler for observers only.
 * coap_find_observer only compares the session pointer: it may be stale. */
static int
lcp_observe_by_handler(coap_resource_t *resource, coap_session_t *session,
                       const uint8_t *token, size_t len, unsigned int *value) {
  coap_binary_t bin;
  bin.length = len;
  bin.s = (uint8_t *)token;
  if (!resource->observable || !coap_find_observer(resource, session, &bin))
    return 0;
  *value = resource->observe;
  return 1;
}

/* 4.2.1's coap_new_endpoint crashes when its bind fails on a context with no
 * endpoint yet (its error path unlinks from an empty list). lcp_new_endpoint
 * tries the address first (lcp_bind_probe, with the right socket type), so
 * the bind here fails only if another socket takes the address in between. */
static coap_pdu_t *
lcp_pdu_and_token(coap_session_t *session, int type, int code, uint8_t *token,
            size_t *token_len) {
  /* 4.2 has no token generator: a process-wide counter, started at random. */
  static uint64_t counter = 0;
  coap_pdu_t *pdu = coap_new_pdu(session);
  size_t i;
  if (!pdu)
    return NULL;
  pdu->type = (uint8_t)type;
  pdu->code = (uint8_t)code;
  pdu->tid = coap_new_message_id(session);
  if (counter == 0) {
    prng((unsigned char *)&counter, sizeof(counter));
    counter ^= (uint64_t)time(NULL) << 24 ^ (uint64_t)getpid();
  }
  counter++;
  for (i = 0; i < 8; i++)
    token[i] = (uint8_t)(counter >> (8 * i));
  *token_len = 8;
  return pdu;
}

void
lcp_pdu_info(const coap_pdu_t *pdu, lcp_pdu_info_t *out) {
  uint8_t *data = NULL;
  out->type = pdu->type;
  out->code = pdu->code;
  out->mid = pdu->tid;
  out->token = pdu->token;
  out->token_len = pdu->token_length;
  if (coap_get_data(pdu, &out->payload_len, &data)) {
    out->payload = data;
  } else {
    out->payload = NULL;
    out->payload_len = 0;
  }
}

void lcp_pdu_set_type(coap_pdu_t *pdu, int type) { pdu->type = (uint8_t)type; }
void lcp_pdu_set_code(coap_pdu_t *pdu, int code) { pdu->code = (uint8_t)code; }
void lcp_pdu_set_mid(coap_pdu_t *pdu, int mid) { pdu->tid = (uint16_t)mid; }

/* 4.2 frees idle server sessions without telling: ask whether the peer's
 * session is still this one (the Python side then checks it is still ours). */
int
lcp_session_alive(coap_context_t *ctx, const coap_session_t *session,
                  const coap_address_t *remote, int ifindex) {
  return coap_session_get_by_peer(ctx, remote, ifindex) == session;
}

#endif /* LCP_GENERATION */

/* ================================================================== */
/* The lcp_* interface                                                 */

/* One I/O pass, marked as such for the log handler (lcp_in_io). */
static int
lcp_io(coap_context_t *ctx, int timeout_ms) {
  int result, outer = lcp_in_io;
  lcp_in_io = 1;
  result = lcp_io_pass(ctx, timeout_ms);
  lcp_in_io = outer;
  return result;
}

coap_context_t *
lcp_new_context(void *app_data) {
  coap_context_t *ctx = coap_new_context(NULL);
  if (!ctx)
    return NULL;
  coap_set_app_data(ctx, app_data);
  lcp_register(ctx);
  return ctx;
}

void
lcp_install_log_handler(void) {
  coap_set_log_handler(lcp_on_log);
}

/* timeout_ms < 0: wait until something happens; 0: poll; > 0: at most that. */
int
lcp_io_process(coap_context_t *ctx, int timeout_ms) {
  return lcp_io(ctx, timeout_ms);
}

/* asyncio (libcoap_py.aio): passes that do not wait, then the milliseconds until
 * libcoap's next timer (a retransmission, a DTLS timer, a keepalive): 0 for none,
 * < 0 when a pass failed. After the first pass, more while the last one answered a
 * request (the Python dispatch sets *served, as for lcp_serve_io), at most passes
 * in all. The event loop waits on coap_context_get_coap_fd (add_reader) and on
 * this time (call_at). coap_io_prepare_epoll has this name and signature on 4.2
 * and 4.3; only epoll builds come here (Python checks the descriptor first).
 * Buys: the event loop's turn in one call instead of three (coap_io_process,
 * coap_ticks into a cffi buffer, coap_io_prepare_epoll), and a server's queued
 * requests without a way back through the event loop each: the async server of
 * benchmarks/own_server.py --async serves 60,594-66,096 req/s with up to 16
 * passes a turn against 32,020-33,530 with one (cclient inflight, 16 sessions). */
int
lcp_io_poll(coap_context_t *ctx, int *served, int passes) {
  coap_tick_t now;
  unsigned int next;
  do {
    *served = 0;
    if (lcp_io(ctx, 0) < 0)
      return -1;
  } while (*served && --passes > 0);
  coap_ticks(&now);
  next = coap_io_prepare_epoll(ctx, now);
  return next > INT_MAX ? INT_MAX : (int)next;
}

/* ------------------------------------------------------------------ */
/* Waking the loop from another thread (Context.call_soon_threadsafe) */

/* Add wake_fd (a pipe's read end) to the epoll set libcoap waits on (coap_fd, from
 * coap_context_get_coap_fd). Its event carries a NULL pointer, which libcoap's
 * epoll dispatch (4.2 and 4.3) skips as it does its own timer's, so a write to
 * the pipe only ends the wait. Edge-triggered: unread bytes do not make every
 * later wait return at once. Returns 0, or errno. */
int
lcp_wake_attach(int coap_fd, int wake_fd) {
  struct epoll_event event;
  memset(&event, 0, sizeof(event));
  event.events = EPOLLIN | EPOLLET;
  event.data.ptr = NULL;
  return epoll_ctl(coap_fd, EPOLL_CTL_ADD, wake_fd, &event) == 0 ? 0 : errno;
}

/* Wake-ups written by any thread (lcp_io_wait hands back when this changes). */
static int lcp_wakes;

/* Safe from any thread: count the wake-up, then write a byte to the pipe's
 * write end. Returns 0, or errno (EAGAIN: the pipe is full, a wake-up is due). */
int
lcp_wake(int write_fd) {
  char byte = 0;
  __atomic_add_fetch(&lcp_wakes, 1, __ATOMIC_SEQ_CST);
  return write(write_fd, &byte, 1) == 1 ? 0 : errno;
}

/* A blocking request's wait (Session._drive): passes of up to timeout_ms in all,
 * until the claim is answered or NACKed, a pass called into Python (its after_io
 * must run: handler errors, hooks), another thread woke the loop, or the time is
 * up. Returns the last pass's result (< 0: failed). Buys: a transfer libcoap does
 * block by block (a 1 MiB block-wise GET: 1,024 passes) waits without a way back
 * to Python per pass; 32.3 ms against 27.5 ms of CPU per 1 MiB GET at 54db549,
 * whose waiter looped in C, before this (benchmarks/run.py, block1m). */
int
lcp_io_wait(coap_context_t *ctx, const lcp_claim_t *claim, int timeout_ms) {
  unsigned int calls = lcp_py_calls;
  int wakes = __atomic_load_n(&lcp_wakes, __ATOMIC_SEQ_CST);
  struct timespec start, now;
  int result, left = timeout_ms;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    result = lcp_io(ctx, left);
    if (result < 0 || claim->state != 0 || lcp_py_calls != calls ||
        __atomic_load_n(&lcp_wakes, __ATOMIC_SEQ_CST) != wakes)
      return result;
    clock_gettime(CLOCK_MONOTONIC, &now);
    left = timeout_ms - (int)((now.tv_sec - start.tv_sec) * 1000 +
                              (now.tv_nsec - start.tv_nsec) / 1000000);
    if (left <= 0)
      return result;
  }
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
  coap_session_t *session;
  lcp_client_blocks(ctx, 1);
  session = coap_new_client_session(ctx, local, server, (coap_proto_t)proto);
  lcp_client_blocks(ctx, 0);
  return session;
}

coap_session_t *
lcp_client_session_psk(coap_context_t *ctx, const coap_address_t *local,
                       const coap_address_t *server, int proto,
                       const uint8_t *identity, size_t identity_len,
                       const uint8_t *key, size_t key_len,
                       const char *client_sni) {
  coap_session_t *session;
  lcp_client_blocks(ctx, 1);
  session = lcp_psk_session(ctx, local, server, proto, identity, identity_len,
                            key, key_len, client_sni);
  lcp_client_blocks(ctx, 0);
  return session;
}

static void
lcp_fill_pki(coap_dtls_pki_t *setup, const lcp_pki_t *pki) {
  memset(setup, 0, sizeof(*setup));
  setup->version = COAP_DTLS_PKI_SETUP_VERSION;
  setup->verify_peer_cert = (uint8_t)pki->verify_peer_cert;
  setup->allow_self_signed = (uint8_t)pki->allow_self_signed;
  setup->allow_expired_certs = (uint8_t)pki->allow_expired_certs;
  setup->cert_chain_validation = (uint8_t)pki->cert_chain_validation;
  setup->cert_chain_verify_depth = (uint8_t)pki->cert_chain_verify_depth;
  setup->check_cert_revocation = (uint8_t)pki->check_cert_revocation;
  setup->allow_no_crl = (uint8_t)pki->allow_no_crl;
  setup->allow_expired_crl = (uint8_t)pki->allow_expired_crl;
  setup->validate_cn_call_back = lcp_on_cn;
  setup->cn_call_back_arg = pki->cn_arg;
  setup->pki_key.key_type = COAP_PKI_KEY_PEM;
  setup->pki_key.key.pem.public_cert = pki->cert_file;
  setup->pki_key.key.pem.private_key = pki->key_file;
  setup->pki_key.key.pem.ca_file = pki->ca_file;
  lcp_pki_generation(setup, pki);
}

coap_session_t *
lcp_client_session_pki(coap_context_t *ctx, const coap_address_t *local,
                       const coap_address_t *server, int proto,
                       const lcp_pki_t *pki) {
  coap_dtls_pki_t setup;
  coap_session_t *session;
  lcp_fill_pki(&setup, pki);
  lcp_client_blocks(ctx, 1);
  session = coap_new_client_session_pki(ctx, local, server, (coap_proto_t)proto,
                                        &setup);
  lcp_client_blocks(ctx, 0);
  return session;
}

/* The app data of the session's context (the Python Context's handle). */
void *
lcp_session_context_app_data(const coap_session_t *session) {
  return coap_get_app_data(lcp_ctx_of(session));
}

int
lcp_session_address(const coap_session_t *session, int remote, char *ip,
                    size_t iplen, uint16_t *port) {
  const coap_address_t *addr = remote ? lcp_remote_of(session) : lcp_local_of(session);
  if (!addr)
    return 0;
  return lcp_address_format(addr, ip, iplen, port);
}

int lcp_session_state(const coap_session_t *session) { return lcp_state_of(session); }

/* Start the session's token sequence at token (coap-client's -T): 1, or 0 where
 * libcoap keeps no sequence to start (4.2: each request takes its own token). */
int
lcp_session_init_token(coap_session_t *session, size_t length, const uint8_t *token) {
#if LCP_GENERATION >= 3
  coap_session_init_token(session, length, token);
  return 1;
#else
  (void)session; (void)length; (void)token;
  return 0;
#endif
}
int lcp_session_proto(const coap_session_t *session) { return lcp_proto_of(session); }
int lcp_session_is_server(const coap_session_t *session) { return lcp_is_server(session); }

/* Where the session's peer is, to find the session again (lcp_session_alive). */
void
lcp_session_peer(const coap_session_t *session, coap_address_t *remote, int *ifindex) {
  const coap_address_t *addr = lcp_remote_of(session);
  coap_address_init(remote);
  if (addr)
    memcpy(remote, addr, sizeof(*remote));
  *ifindex = lcp_ifindex_of(session);
}

/* The session's PSK identity (server side: what the client sent). */
int
lcp_session_psk_identity(const coap_session_t *session, const uint8_t **identity,
                         size_t *length) {
  return lcp_psk_identity_of(session, identity, length);
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
  coap_fixed_point_t value = coap_session_get_ack_timeout((coap_session_t *)session);
  return value.integer_part * 1000u + value.fractional_part;
}

unsigned int
lcp_session_get_ack_random_factor_milli(const coap_session_t *session) {
  coap_fixed_point_t value =
    coap_session_get_ack_random_factor((coap_session_t *)session);
  return value.integer_part * 1000u + value.fractional_part;
}


unsigned int
lcp_session_get_max_retransmit(const coap_session_t *session) {
  return lcp_max_retransmit_of(session);
}

/* MAX_TRANSMIT_WAIT in seconds (RFC 7252, 4.8.2), from the session's current
 * ACK_TIMEOUT, ACK_RANDOM_FACTOR and MAX_RETRANSMIT: one call per request. */
double
lcp_session_max_transmit_wait(const coap_session_t *session) {
  double ack = lcp_session_get_ack_timeout_ms(session) / 1000.0;
  double factor = lcp_session_get_ack_random_factor_milli(session) / 1000.0;
  unsigned int retransmit = lcp_max_retransmit_of(session), i;
  double twice = 2.0; /* 2 ** (MAX_RETRANSMIT + 1), without libm */
  for (i = 0; i < retransmit && twice < 1e300; i++)
    twice *= 2.0;
  return ack * factor * (twice - 1.0);
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
  return lcp_server_psk(ctx, hint, hint_len, key, key_len, id_arg);
}

static uint16_t
lcp_port_of(const coap_address_t *addr) {
  return ntohs(addr->addr.sa.sa_family == AF_INET ? addr->addr.sin.sin_port
                                                  : addr->addr.sin6.sin6_port);
}

/* Whether a server may take addr for proto: 0, or the errno of a test bind.
 *
 * libcoap binds its listening sockets with SO_REUSEADDR. For TCP (and TLS, WS)
 * that lets a restarted server take its port back while connections of the
 * old one are in TIME_WAIT, and still fails when another socket listens there,
 * so the test does the same. For UDP (and DTLS) Linux lets any number of
 * sockets that all set SO_REUSEADDR bind one address, and the newest gets the
 * datagrams: the test binds without it, so that any other socket on the
 * address, whatever its options, owner or process, makes it fail. IPv6
 * sockets are dual-stack, as libcoap makes them. With port 0 the test socket
 * (without SO_REUSEADDR) gets a port no socket uses, written to *port for
 * libcoap to bind. */
static int
lcp_bind_probe(const coap_address_t *addr, int proto, uint16_t *port) {
  int on = 1, off = 0, error = 0, fd;
  int datagram = proto == COAP_PROTO_UDP || proto == COAP_PROTO_DTLS;
  int family = addr->addr.sa.sa_family;
  coap_address_t bound;
  socklen_t size = sizeof(bound.addr);
  *port = 0;
  if (family != AF_INET && family != AF_INET6)
    return 0;  /* not a socket address this test knows: libcoap decides */
  fd = socket(family, datagram ? SOCK_DGRAM : SOCK_STREAM, 0);
  if (fd < 0)
    return errno;
  if (!datagram)
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  if (bind(fd, &addr->addr.sa, addr->size) != 0)
    error = errno;
  else if (datagram && lcp_port_of(addr) == 0
           && getsockname(fd, &bound.addr.sa, &size) == 0)
    *port = lcp_port_of(&bound);
  close(fd);
  return error;
}

/* A listening endpoint, or NULL with *error set to the errno of the failed
 * test bind (lcp_bind_probe), or to 0 where libcoap refused by itself. */
coap_endpoint_t *
lcp_new_endpoint(coap_context_t *ctx, const coap_address_t *addr, int proto,
                 int *error) {
  coap_address_t chosen;
  uint16_t port;
  *error = lcp_bind_probe(addr, proto, &port);
  if (*error)
    return NULL;
  if (port) {
    chosen = *addr;
    if (chosen.addr.sa.sa_family == AF_INET)
      chosen.addr.sin.sin_port = htons(port);
    else
      chosen.addr.sin6.sin6_port = htons(port);
    addr = &chosen;
  }
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
  coap_resource_t *r = lcp_unknown_resource();
  if (r)
    coap_resource_set_userdata(r, app_data);
  return r;
}

void
lcp_resource_handle(coap_resource_t *resource, int method) {
  lcp_handle_method(resource, method);
}

/* ------------------------------------------------------------------ */
/* PDUs */

coap_pdu_t *
lcp_new_request(coap_session_t *session, int type, int code,
                uint8_t *token_out, size_t *token_len) {
  coap_pdu_t *pdu = lcp_pdu_and_token(session, type, code, token_out, token_len);
  if (!pdu)
    return NULL;
  if (!coap_add_token(pdu, *token_len, token_out)) {
    coap_delete_pdu(pdu);
    return NULL;
  }
  return pdu;
}

/* A request PDU with the caller's token (0 to 8 bytes) instead of a new one. */
coap_pdu_t *
lcp_new_request_with_token(coap_session_t *session, int type, int code,
                           const uint8_t *token, size_t token_len) {
  uint8_t unused[8];
  size_t unused_len = 0;
  coap_pdu_t *pdu;
  if (token_len > 8)
    return NULL;
  pdu = lcp_pdu_and_token(session, type, code, unused, &unused_len);
  if (!pdu)
    return NULL;
  if (!coap_add_token(pdu, token_len, token)) {
    coap_delete_pdu(pdu);
    return NULL;
  }
  return pdu;
}

/* libcoap 4.3 puts a Block2 option (block 0, no more, the observer's size)
 * into a notification before the handler runs, and exports nothing that
 * removes or updates it; a second Block2 is refused. Overwrite its value in
 * place: 1 when done, 0 when there is no Block2, -1 when the value has
 * another length (4.3 encodes 0/_/16 as an empty value, which 0/M/16 cannot
 * replace). */
int
lcp_patch_block2(coap_pdu_t *pdu, const uint8_t *value, size_t len) {
  coap_opt_iterator_t it;
  coap_opt_t *opt = coap_check_option(pdu, COAP_OPTION_BLOCK2, &it);
  if (!opt)
    return 0;
  if (coap_opt_length(opt) != len)
    return -1;
  memcpy((uint8_t *)coap_opt_value(opt), value, len);
  return 1;
}

size_t
lcp_pdu_options(const coap_pdu_t *pdu, uint16_t *numbers,
                const uint8_t **values, size_t *lengths, size_t max) {
  coap_opt_iterator_t it;
  coap_opt_t *opt;
  size_t n = 0;
  if (!coap_option_iterator_init((coap_pdu_t *)pdu, &it, COAP_OPT_ALL))
    return 0;
  while ((opt = coap_option_next(&it)) != NULL) {
    if (n < max) {
      numbers[n] = (uint16_t)LCP_OPT_NUMBER(it);
      values[n] = coap_opt_value(opt);
      lengths[n] = coap_opt_length(opt);
    }
    n++;
  }
  return n; /* may exceed max: the caller retries with room for n */
}

/* Observe (RFC 7641), server side: make a resource observable and notify. */
void
lcp_resource_observable(coap_resource_t *resource, int observable, int confirmable) {
  coap_resource_set_get_observable(resource, observable);
  coap_resource_set_mode(resource, confirmable ? COAP_RESOURCE_FLAGS_NOTIFY_CON
                                               : COAP_RESOURCE_FLAGS_NOTIFY_NON);
}


/* 1 when the handler must add the Observe option (value in *value) to its
 * response: this libcoap leaves that to the handler, and the session observes
 * the resource with this token. 0 when there is nothing to add (no such
 * observer, or libcoap adds the option itself). */
int
lcp_observe_option(coap_resource_t *resource, coap_session_t *session,
                   const uint8_t *token, size_t len, unsigned int *value) {
  return lcp_observe_by_handler(resource, session, token, len, value);
}

/* Observe, client side: deregister the observation that used this token. */
int
lcp_cancel_observe(coap_session_t *session, const uint8_t *token, size_t len,
                   int confirmable) {
#if LCP_GENERATION >= 3
  coap_binary_t bin;
  bin.s = (uint8_t *)token;
  bin.length = len;
  return coap_cancel_observe(session, &bin,
                             confirmable ? COAP_MESSAGE_CON : COAP_MESSAGE_NON);
#else
  (void)session; (void)token; (void)len; (void)confirmable;
  return 0;
#endif
}

/* Let the context accept a (critical) option number it does not know. */
void
lcp_register_option(coap_context_t *ctx, uint16_t number) {
  coap_register_option(ctx, number);
}

/* 1 if this libcoap can do CoAP over TCP (coap+tcp://). */
int
lcp_tcp_supported(void) {
#if LCP_GENERATION >= 3
  return coap_tcp_is_supported();
#elif defined(COAP_DISABLE_TCP)
  return 0;
#else
  return 1; /* 4.2 has no coap_tcp_is_supported(); TCP is built in unless disabled */
#endif
}

/* Attach a body of any size; libcoap sends it block-wise (4.3). */
int
lcp_add_data_large_request(coap_session_t *session, coap_pdu_t *pdu,
                           const uint8_t *data, size_t len) {
  return lcp_large_request(session, pdu, data, len);
}


/* A delayed response in one call (DelayedResponse.send's common case): a PDU
 * of the given type for the session, with the request's token, message ID mid
 * (< 0: a fresh one), code, an ETag (etag_len 0: none), a Content-Format (cf
 * < 0: none) and the payload, sent. Returns its message ID; -1 when libcoap
 * could not send it; -2 when it does not fit one PDU or memory ran out
 * (nothing sent: the caller takes the general way). Saves five calls from
 * Python a response, with their GIL hand-overs (benchmarks/service_ingest.py). */
int
lcp_send_reply(coap_session_t *session, int type, int mid, const uint8_t *token,
               size_t token_len, int code, const uint8_t *etag, size_t etag_len,
               int cf, const uint8_t *payload, size_t len) {
  uint8_t buf[4];
  coap_pdu_t *pdu = lcp_new_request_with_token(session, type, code, token, token_len);
  if (!pdu)
    return -2;
  if (mid >= 0)
    lcp_pdu_set_mid(pdu, mid);
  if ((etag_len && !coap_add_option(pdu, COAP_OPTION_ETAG, etag_len, etag)) ||
      (cf >= 0 && !coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT,
                                   coap_encode_var_safe(buf, sizeof(buf), (unsigned int)cf),
                                   buf)) ||
      (len && !coap_add_data(pdu, len, payload))) {
    coap_delete_pdu(pdu);
    return -2;
  }
  return (int)coap_send(session, pdu);
}

/* Options crossing between C and Python are packed as: number (2 bytes), value
 * length (4 bytes, both big-endian), value; pdu.pack_options() and
 * unpack_options() are the Python side. Writes one at p (room for 6 + len
 * bytes). */
static void
lcp_pack_option(uint8_t *p, size_t number, const uint8_t *value, size_t len) {
  p[0] = (uint8_t)(number >> 8);
  p[1] = (uint8_t)number;
  p[2] = (uint8_t)(len >> 24);
  p[3] = (uint8_t)(len >> 16);
  p[4] = (uint8_t)(len >> 8);
  p[5] = (uint8_t)len;
  if (len)
    memcpy(p + 6, value, len);
}

/* ------------------------------------------------------------------ */
/* Library information */

const char *
lcp_tls_library_name(void) {
  switch (coap_get_tls_library_version()->type) {
  case COAP_TLS_LIBRARY_TINYDTLS: return "TinyDTLS";
  case COAP_TLS_LIBRARY_OPENSSL: return "OpenSSL";
  case COAP_TLS_LIBRARY_GNUTLS: return "GnuTLS";
#if LCP_GENERATION >= 3
  case COAP_TLS_LIBRARY_MBEDTLS: return "Mbed TLS";
#endif
  default: return "none";
  }
}

uint64_t
lcp_tls_library_version(void) {
  return coap_get_tls_library_version()->version;
}

/* ------------------------------------------------------------------ */
/* What the (D)TLS library under libcoap can do                        */
/*
 * One place for the differences between libcoap's TLS backends, as
 * LCP_TLS_* flags (1 = yes). libcoap_py/capabilities.py reads them; the Python
 * layer asks these, never the library's name or version. The facts come from
 * libcoap's sources (src/coap_gnutls.c, coap_mbedtls.c, coap_openssl.c of
 * 4.3.1 to 4.3.5, and 4.2.1) and from running the suite on 4.3.1 with
 * OpenSSL and GnuTLS; Mbed TLS is read from the source only (no Debian
 * release ships an Mbed TLS build of libcoap).
 */

static int
lcp_tls_is(int type) {
  return (int)coap_get_tls_library_version()->type == type;
}

#if LCP_GENERATION >= 3
#define LCP_TLS_IS_MBEDTLS lcp_tls_is(COAP_TLS_LIBRARY_MBEDTLS)
#else
#define LCP_TLS_IS_MBEDTLS 0 /* 4.2 has no Mbed TLS backend */
#endif

/* check_cert_revocation is honoured. Only the OpenSSL code loads CRLs (next
 * to the trusted roots). The GnuTLS code sets no CRL at all, and the Mbed TLS
 * code hands none to mbedtls_ssl_conf_ca_chain(): both accept a revoked
 * certificate as if revocation had not been asked for. */
#define LCP_TLS_CHECKS_REVOCATION lcp_tls_is(COAP_TLS_LIBRARY_OPENSSL)

/* PSK and certificate setups of one context stay apart. The GnuTLS and Mbed
 * TLS code keep one "PSK and/or PKI enabled" mask per context and offer every
 * kind it has in every client handshake, with the context's one certificate
 * setup: a "PSK" session made after a certificate setup authenticates with
 * the certificate (the server sees its CN and no PSK identity), a
 * certificate session after a PSK setup may end up using PSK, and a server
 * may present a client session's certificate. (TinyDTLS has PSK only.) */
#define LCP_TLS_KEEPS_PSK_PKI_APART \
  (!lcp_tls_is(COAP_TLS_LIBRARY_GNUTLS) && !LCP_TLS_IS_MBEDTLS)

/* A certificate client session works beside PSK setups of the same context.
 * With OpenSSL (seen on 4.3.1) it does not: a certificate session made after a
 * PSK client session or PSK endpoint fails its handshake (PSK cipher suites
 * only), and a PSK endpoint set up after a certificate client session fails
 * every handshake; a PSK client session after a certificate one works. Where
 * PSK and PKI are not kept apart at all (above), the question does not arise. */
#define LCP_TLS_PKI_CLIENT_BESIDE_PSK \
  (LCP_TLS_KEEPS_PSK_PKI_APART && !lcp_tls_is(COAP_TLS_LIBRARY_OPENSSL))

/* A client's DTLS handshake ends with COAP_EVENT_DTLS_CONNECTED. The GnuTLS
 * code (4.3.1 to 4.3.5) calls coap_session_connected() when the handshake
 * completes on a received record, without the event (it raises it only when
 * the first flight already completes it, or on a later record after a
 * handshake completed by a retransmission timeout). The binding raises it
 * itself where libcoap did not (Dispatch.report_connected). */
#define LCP_TLS_RAISES_CLIENT_CONNECTED (!lcp_tls_is(COAP_TLS_LIBRARY_GNUTLS))

/* ================================================================== */
/* Server fast path                                                    */
/*
 * What the server's dispatch needs from a request, in one call, and the
 * usual answer (code, at most a Content-Format, a payload that fits one
 * PDU) in one more. Built on the lcp_* primitives above: the same in every
 * generation.
 *
 * What it buys (benchmarks/run.py --before, against a build without
 * lcp_serve_read, lcp_serve_reply and lcp_serve_io): the project's own
 * server answered 59,367 requests/s with it and 41,017 without (1.45x);
 * 16.8 against 24.3 us of CPU a request.
 */

/* lcp_serve_info_t: cdef/structs.h. */

#define LCP_SERVE_BLOCK1 1
#define LCP_SERVE_BLOCK2 2

/* A PDU's options, packed (lcp_pack_option) into out in wire order; returns the
 * bytes they need: when that is more than room, out holds only a part and the
 * caller calls again with room for all. *blocks (unless NULL) gets the
 * LCP_SERVE_BLOCK* flags of the Block options found. A received message keeps
 * its options packed until Python first asks for them (Response, Request): one
 * call here instead of a Python loop over the options of every answer a
 * request() waits for (benchmarks: Session.request). */
size_t
lcp_pdu_pack_options(const coap_pdu_t *pdu, uint8_t *out, size_t room, int *blocks) {
  coap_opt_iterator_t it;
  coap_opt_t *opt;
  size_t used = 0;
  int found = 0;
  if (coap_option_iterator_init((coap_pdu_t *)pdu, &it, COAP_OPT_ALL)) {
    while ((opt = coap_option_next(&it)) != NULL) {
      size_t number = (size_t)LCP_OPT_NUMBER(it);
      size_t len = coap_opt_length(opt);
      if (number == COAP_OPTION_BLOCK1)
        found |= LCP_SERVE_BLOCK1;
      else if (number == COAP_OPTION_BLOCK2)
        found |= LCP_SERVE_BLOCK2;
      if (used + 6 + len <= room)
        lcp_pack_option(out + used, number, coap_opt_value(opt), len);
      used += 6 + len;
    }
  }
  if (blocks)
    *blocks = found;
  return used;
}

/* ------------------------------------------------------------------ */
/* Claims: a one-shot request's answer, taken with no call into Python.
 *
 * Every request that waits for one answer (request(), a block of a 4.2
 * block-wise transfer) is sent by lcp_send_claimed(), which arms a claim
 * (session, token, message ID) first. libcoap's response handler copies a
 * matching response into it (code, type, message ID, payload, options packed)
 * and acknowledges it; its NACK handler records a matching NACK's reason. The
 * exchange engine (_exchange.py) completes the request from the claim after
 * the pass. Every other answer (observations, late answers, the handler
 * loop's) goes to Python through the trampolines.
 *
 * lcp_send_claimed() also runs the first I/O pass, in which a response on a
 * quick link usually arrives: request()'s common case is one call.
 *
 * What it buys (benchmarks/instructions.py: callgrind, sequential CON GETs
 * over UDP against coap-server, the client's instructions per request):
 * 63,900 with the answer going through the Python trampoline and a Python
 * pass, 36,100 with claims; lcp_request_claimed() (the PDU built here from
 * the prepared options) and one-unpack answers bring it to 29,200. See
 * docs/architecture.md, "C on the hot path".
 *
 * Armed claims form a per-thread list: a libcoap context runs on one thread,
 * and its answers arrive in its own I/O passes. The Python side disarms a
 * claim whenever its exchange ends (answered, abandoned, failed). A claim is
 * freed by its Python owner's garbage collection (lcp_claim_free), which
 * disarms it first: an exception that reaches Python between the send and the
 * exchange (a signal handler's, say) leaves nothing dangling. Where that
 * happens on another thread (a traceback handed to a thread), the claim is
 * left to its own thread, which frees it before its next send. */

static __thread lcp_claim_t *lcp_armed;
static int lcp_orphans; /* claims left to their thread (lcp_claim_free) */

static void
lcp_claim_unlink(lcp_claim_t *c) {
  lcp_claim_t **p = &lcp_armed;
  if (!c->session)
    return; /* not armed */
  while (*p && *p != c)
    p = &(*p)->next;
  if (*p)
    *p = c->next;
  c->next = NULL;
  c->session = NULL;
}

/* Back to idle: unlinked, its data inline (a heap copy freed). */
void
lcp_claim_disarm(lcp_claim_t *c) {
  lcp_claim_unlink(c);
  if (c->data && c->data != c->inline_data)
    free(c->data);
  c->data = c->inline_data;
  c->cap = sizeof(c->inline_data);
  c->state = 0;
  c->payload_len = c->data_len = 0;
}

lcp_claim_t *
lcp_claim_new(void) {
  lcp_claim_t *c = calloc(1, sizeof(lcp_claim_t));
  if (c) {
    c->data = c->inline_data;
    c->cap = sizeof(c->inline_data);
  }
  return c;
}

void
lcp_claim_free(lcp_claim_t *c) {
  if (c->session && c->home != &lcp_armed) {
    /* Armed on another thread, whose I/O may be walking its list now. */
    __atomic_store_n(&c->orphan, 1, __ATOMIC_RELEASE);
    __atomic_add_fetch(&lcp_orphans, 1, __ATOMIC_RELEASE);
    return;
  }
  lcp_claim_disarm(c);
  free(c);
}

/* Free this thread's orphans (see lcp_claim_free). */
static void
lcp_claims_reap(void) {
  lcp_claim_t **p = &lcp_armed;
  while (*p) {
    lcp_claim_t *c = *p;
    if (__atomic_load_n(&c->orphan, __ATOMIC_ACQUIRE)) {
      *p = c->next;
      c->session = NULL;
      if (c->data != c->inline_data)
        free(c->data);
      free(c);
      __atomic_sub_fetch(&lcp_orphans, 1, __ATOMIC_RELEASE);
    } else {
      p = &c->next;
    }
  }
}

/* time.monotonic()'s clock, in seconds. */
static double
lcp_monotonic(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

int
lcp_send_claimed(coap_context_t *ctx, coap_session_t *session, coap_pdu_t *pdu,
                 lcp_claim_t *claim, int wait_ms) {
  lcp_pdu_info_t info;
  int mid;
  if (__atomic_load_n(&lcp_orphans, __ATOMIC_ACQUIRE))
    lcp_claims_reap();
  lcp_claim_disarm(claim);
  lcp_pdu_info(pdu, &info);
  if (info.token_len > sizeof(claim->token)) { /* (libcoap makes none) */
    coap_delete_pdu(pdu);
    return -1;
  }
  memcpy(claim->token, info.token, info.token_len);
  claim->token_len = info.token_len;
  claim->request_mid = info.mid;
  claim->sent_at = lcp_monotonic();
  claim->session = session;
  claim->home = &lcp_armed;
  claim->next = lcp_armed;
  lcp_armed = claim;
  mid = (int)coap_send(session, pdu);
  if (mid < 0) {
    lcp_claim_disarm(claim);
    return mid;
  }
  if (wait_ms >= 0)
    lcp_io(ctx, wait_ms); /* a failure shows again in the caller's next pass */
  return mid;
}

#define LCP_NO_PDU (-2)
#define LCP_NO_ROOM_OPTION (-3)
#define LCP_NO_ROOM_PAYLOAD (-4)
#define LCP_QUIET 0x10000

/* A request PDU with a fresh message ID and token, the options of blob (packed
 * as lcp_pack_option packs them, in order) and the payload; or NULL, with *error
 * set to LCP_NO_PDU, LCP_NO_ROOM_OPTION or LCP_NO_ROOM_PAYLOAD. */
static coap_pdu_t *
lcp_build_request(coap_session_t *session, int type, int code, const uint8_t *blob,
                  size_t blob_len, const uint8_t *payload, size_t payload_len,
                  int *error) {
  uint8_t token[8];
  size_t token_len = 0, at = 0;
  coap_pdu_t *pdu = lcp_new_request(session, type, code, token, &token_len);
  if (!pdu) {
    *error = LCP_NO_PDU;
    return NULL;
  }
  while (at + 6 <= blob_len) {
    uint16_t number = (uint16_t)(blob[at] << 8 | blob[at + 1]);
    size_t len = (size_t)blob[at + 2] << 24 | (size_t)blob[at + 3] << 16 |
                 (size_t)blob[at + 4] << 8 | blob[at + 5];
    at += 6;
    if (at + len > blob_len || !coap_add_option(pdu, number, len, blob + at)) {
      coap_delete_pdu(pdu);
      *error = LCP_NO_ROOM_OPTION;
      return NULL;
    }
    at += len;
  }
  if (payload_len && !coap_add_data(pdu, payload_len, payload)) {
    coap_delete_pdu(pdu);
    *error = LCP_NO_ROOM_PAYLOAD;
    return NULL;
  }
  return pdu;
}

/* request()'s common case in one call: a request PDU with a fresh token, the
 * options of blob (packed as lcp_pack_option packs them, sorted by number) and
 * the payload, sent as lcp_send_claimed() sends one. Returns what that returns,
 * or LCP_NO_PDU, LCP_NO_ROOM_OPTION, LCP_NO_ROOM_PAYLOAD (nothing sent, the
 * claim idle). LCP_QUIET is added to the message ID when the first pass answered
 * the claim and no call into Python was made meanwhile: request() then returns
 * the answer with no after_io() when nothing else waits for one (Loop.watched).
 * Buys, with the claim's send time stamped here (sent_at: no time.monotonic() a
 * request): about 2,000 instructions a request (29,300 to 27,400 under callgrind,
 * 1,000 sequential GETs; docs/architecture.md). */
int
lcp_request_claimed(coap_context_t *ctx, coap_session_t *session, lcp_claim_t *claim,
                    int type, int code, const uint8_t *blob, size_t blob_len,
                    const uint8_t *payload, size_t payload_len, int wait_ms) {
  unsigned int calls = lcp_py_calls;
  int mid, error = 0;
  coap_pdu_t *pdu = lcp_build_request(session, type, code, blob, blob_len, payload,
                                      payload_len, &error);
  if (!pdu)
    return error;
  mid = lcp_send_claimed(ctx, session, pdu, claim, wait_ms);
  if (mid >= 0 && claim->state == 1 && lcp_py_calls == calls)
    mid |= LCP_QUIET;
  return mid;
}

/* Session.send() of a PDU from Session.new_pdu() that Python has not asked libcoap
 * to make yet (pdu.py: an unbuilt PDU), in one call: made with its options (blob)
 * and sent. Returns coap_send's result, or lcp_build_request's error.
 * Buys: one call instead of four (lcp_new_request, coap_add_option, coap_send,
 * and ffi.gc twice): the C sample's shape, a fresh PDU with a Uri-Path sent from
 * inside the response handler, went from 48,100 to 44,200 instructions a GET
 * (benchmarks/instructions.py; docs/architecture.md). */
int
lcp_send_new(coap_session_t *session, int type, int code, const uint8_t *blob,
             size_t blob_len) {
  int error = 0;
  coap_pdu_t *pdu = lcp_build_request(session, type, code, blob, blob_len, NULL, 0,
                                      &error);
  if (!pdu)
    return error;
  return (int)coap_send(session, pdu);
}

/* Copy the response into the claim (its token, payload and options, one after
 * the other): 0 when out of memory. */
static int
lcp_claim_copy(lcp_claim_t *c, const coap_pdu_t *pdu, const lcp_pdu_info_t *info) {
  size_t head = info->token_len + info->payload_len, options;
  if (head <= c->cap)
    options = lcp_pdu_pack_options(pdu, c->data + head, c->cap - head, NULL);
  else
    options = lcp_pdu_pack_options(pdu, NULL, 0, NULL);
  if (head + options > c->cap) { /* (only ever from the inline data) */
    uint8_t *p = malloc(head + options);
    if (!p)
      return 0;
    c->data = p;
    c->cap = head + options;
    lcp_pdu_pack_options(pdu, c->data + head, options, NULL);
  }
  if (info->token_len)
    memcpy(c->data, info->token, info->token_len);
  if (info->payload_len)
    memcpy(c->data + info->token_len, info->payload, info->payload_len);
  c->payload_len = info->payload_len;
  c->data_len = head + options;
  c->code = info->code;
  c->type = info->type;
  c->mid = info->mid;
  return 1;
}

static int
lcp_claim_matches(const lcp_claim_t *c, const coap_session_t *session,
                  const uint8_t *token, size_t token_len) {
  return c->session == session && c->token_len == token_len &&
         (!token_len || memcmp(c->token, token, token_len) == 0);
}

/* From the response handler: 1 when an armed claim took the response. */
static int
lcp_claim_take(const coap_session_t *session, const coap_pdu_t *received,
               const lcp_pdu_info_t *info) {
  lcp_claim_t *c;
  for (c = lcp_armed; c; c = c->next) {
    if (lcp_claim_matches(c, session, info->token, info->token_len)) {
      if (!lcp_claim_copy(c, received, info))
        return 0; /* out of memory: the Python side takes it */
      lcp_claim_unlink(c);
      c->state = 1;
      return 1;
    }
  }
  return 0;
}

/* From the NACK handler: 1 when the NACK is for an armed claim's request (by its
 * token; by its message ID when libcoap no longer has the request). */
static int
lcp_claim_nack(const coap_session_t *session, const coap_pdu_t *sent, int reason,
               int mid) {
  lcp_claim_t *c;
  lcp_pdu_info_t info;
  if (!lcp_armed)
    return 0;
  if (sent)
    lcp_pdu_info(sent, &info);
  for (c = lcp_armed; c; c = c->next) {
    if (sent ? lcp_claim_matches(c, session, info.token, info.token_len)
             : (c->session == session && c->request_mid == mid)) {
      lcp_claim_unlink(c);
      c->nack_reason = reason;
      c->state = 2;
      return 1;
    }
  }
  return 0;
}

/* Fill *out; copy the options into scratch, packed (lcp_pdu_pack_options).
 * out->options_len is what they need: when more than room, scratch holds only a
 * part and the caller calls again with room for all. */
void
lcp_serve_read(const coap_session_t *session, const coap_pdu_t *request,
               lcp_serve_info_t *out, char *scratch, size_t room) {
  lcp_pdu_info_t info;
  lcp_pdu_info(request, &info);
  out->session_data = coap_session_get_app_data(session);
  out->code = info.code;
  out->type = info.type;
  out->mid = info.mid;
  out->token = (const char *)info.token;
  out->token_len = info.token_len;
  out->payload = (const char *)info.payload;
  out->payload_len = info.payload_len;
  out->options_len =
    lcp_pdu_pack_options(request, (uint8_t *)scratch, room, &out->blocks);
}

/* Answer with code, a Content-Format (content_format < 0: none) and a
 * payload, when they fit one PDU of the session. 1: done; 0: the payload
 * does not fit (nothing written: the caller goes block-wise); -1: libcoap
 * refused. */
int
lcp_serve_reply(coap_session_t *session, coap_pdu_t *response, int code,
                int content_format, const uint8_t *payload, size_t len) {
  uint8_t cf[2];
  size_t cf_len = 0, overhead, max_pdu;
  lcp_pdu_info_t info;
  if (content_format > 0xff) {
    cf[0] = (uint8_t)(content_format >> 8);
    cf[1] = (uint8_t)content_format;
    cf_len = 2;
  } else if (content_format > 0) {
    cf[0] = (uint8_t)content_format;
    cf_len = 1;
  }
  if (len) {
    lcp_pdu_info(response, &info);
    max_pdu = coap_session_max_pdu_size(session);
    /* header, token, the option (Content-Format is option 12: a one-byte
     * delta), payload marker */
    overhead = 4 + info.token_len + (content_format >= 0 ? 1 + cf_len : 0) + 1;
    if (overhead > max_pdu || len > max_pdu - overhead)
      return 0;
  }
  lcp_pdu_set_code(response, code);
  if (content_format >= 0 &&
      !coap_add_option(response, COAP_OPTION_CONTENT_FORMAT, cf_len, cf))
    return -1;
  if (len && !coap_add_data(response, len, payload))
    return -1;
  return 1;
}

/* One round of I/O for a serving loop: lcp_io_process(ctx, timeout_ms), then
 * more passes that do not wait, while the previous one answered a request
 * (the Python dispatch sets *served), at most passes in all and while the
 * passes took less than timeout_ms together (as libcoap counts: a quick pass
 * counts 0). Saves the way back to Python between requests that are already
 * queued. Returns the milliseconds spent, or -1 when libcoap's I/O failed. */
int
lcp_serve_io(coap_context_t *ctx, int timeout_ms, int *served, int passes) {
  int result, spent;
  *served = 0;
  result = spent = lcp_io(ctx, timeout_ms);
  while (result >= 0 && *served && --passes > 0 && spent < timeout_ms) {
    *served = 0;
    result = lcp_io(ctx, 0);
    spent += result;
  }
  return result < 0 ? -1 : spent;
}

/* ------------------------------------------------------------------ */
/* The C compiler's size of every structure the declarations share with
 * libcoap or with this file, by name, for the test that the cdef layout
 * (ffi.sizeof) matches the headers of the libcoap being built against.
 * 0: a name this build does not have. */
#define LCP_SIZE(type) if (strcmp(name, #type) == 0) return sizeof(type)
size_t
lcp_sizeof(const char *name) {
  LCP_SIZE(coap_string_t);
  LCP_SIZE(coap_str_const_t);
  LCP_SIZE(coap_binary_t);
  LCP_SIZE(coap_fixed_point_t);
  LCP_SIZE(coap_tls_version_t);
  LCP_SIZE(coap_pki_key_pem_t);
  LCP_SIZE(coap_pki_key_asn1_t);
  LCP_SIZE(coap_dtls_key_t);
  LCP_SIZE(coap_dtls_pki_t);
  LCP_SIZE(coap_address_t);
#if LCP_GENERATION >= 3
  LCP_SIZE(coap_bin_const_t);
  LCP_SIZE(coap_pki_key_pem_buf_t);
  LCP_SIZE(coap_pki_key_pkcs11_t);
  LCP_SIZE(coap_dtls_cpsk_info_t);
  LCP_SIZE(coap_dtls_cpsk_t);
  LCP_SIZE(coap_dtls_spsk_info_t);
  LCP_SIZE(coap_dtls_spsk_t);
  LCP_SIZE(coap_opt_iterator_t);
  LCP_SIZE(coap_opt_filter_t);
#else
  LCP_SIZE(coap_pdu_t);
#endif
#if defined(LIBCOAP_VERSION) && LIBCOAP_VERSION >= 4003005U
  LCP_SIZE(coap_pki_key_define_t);
  LCP_SIZE(coap_const_char_ptr_t);
#endif
  LCP_SIZE(lcp_bin_t);
  LCP_SIZE(lcp_pdu_info_t);
  LCP_SIZE(lcp_pki_t);
  LCP_SIZE(lcp_serve_info_t);
  LCP_SIZE(lcp_claim_t);
  return 0;
}
#undef LCP_SIZE
