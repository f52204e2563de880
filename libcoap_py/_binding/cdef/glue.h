/* The project's own C helpers (libcoap_py/_binding/glue.c): one interface for every
 * libcoap generation. The Pythonic layer talks to libcoap through these and
 * through the few shared declarations; it never branches on the version. */

static const int LCP_GENERATION;
static const char *const LCP_PKG_NAME;

/* Feature flags (1 = available in this build). */
static const int LCP_HAS_PEM_BUF;
static const int LCP_HAS_CLIENT_SNI;
static const int LCP_HAS_PSK_CLIENT_SNI;
static const int LCP_HAS_BINARY_PSK_IDENTITY;
static const int LCP_HAS_BLOCK;
static const int LCP_HAS_CLIENT_OBSERVE;
static const int LCP_HAS_SERVER_OBSERVE;
/* libcoap deregisters an observation itself (coap_cancel_observe). */
static const int LCP_HAS_CANCEL_OBSERVE;
/* A notification runs the GET handler without the registering request. */
static const int LCP_NOTIFY_WITHOUT_REQUEST;
/* libcoap breaks when a handler answers a notification with an error code. */
static const int LCP_NOTIFY_ERROR_UNSAFE;
/* libcoap itself drops every response carrying an unknown critical option. */
static const int LCP_DROPS_UNKNOWN_CRITICAL_RESPONSE;



/* Callbacks into Python, one signature for every generation. */
/* session_data, context_data: the app data (Python handles, or NULL) of the session
 * and its context; sent_info and info: the fields of sent (NULL without sent) and
 * received, read for the call */
extern "Python" int lcp_py_response(void *session_data, void *context_data,
                                    const coap_pdu_t *sent, lcp_pdu_info_t *sent_info,
                                    const coap_pdu_t *received, lcp_pdu_info_t *info,
                                    int mid);
extern "Python" void lcp_py_nack(coap_session_t *session, const coap_pdu_t *sent,
                                 int reason, int mid);
extern "Python" void lcp_py_event(coap_session_t *session, int event);
extern "Python" void lcp_py_log(int level, const char *message, int during_io);
extern "Python" int lcp_py_cn(coap_session_t *session, const char *cn,
                              const uint8_t *der, size_t der_len,
                              unsigned int depth, int validated, void *arg);
extern "Python" const lcp_bin_t *lcp_py_psk_key(coap_session_t *session,
                                                       const uint8_t *identity,
                                                       size_t identity_len, void *arg);
extern "Python" void lcp_py_request(coap_resource_t *resource, coap_session_t *session,
                                    const coap_pdu_t *request, const void *query,
                                    coap_pdu_t *response);

/* Context. */
coap_context_t *lcp_new_context(void *app_data);
void lcp_install_log_handler(void);
int lcp_io_process(coap_context_t *ctx, int timeout_ms);
int lcp_io_poll(coap_context_t *ctx, int *served, int passes);

/* Addresses: ip is a numeric IPv4/IPv6 literal (an IPv6 may carry %scope). */
int lcp_address_set(coap_address_t *addr, const char *ip, uint16_t port);
int lcp_address_format(const coap_address_t *addr, char *ip, size_t iplen,
                       uint16_t *port);

/* Sessions. */

coap_session_t *lcp_client_session(coap_context_t *ctx, const coap_address_t *local,
                                   const coap_address_t *server, int proto);
coap_session_t *lcp_client_session_psk(coap_context_t *ctx,
                                       const coap_address_t *local,
                                       const coap_address_t *server, int proto,
                                       const uint8_t *identity, size_t identity_len,
                                       const uint8_t *key, size_t key_len,
                                       const char *client_sni);
coap_session_t *lcp_client_session_pki(coap_context_t *ctx,
                                       const coap_address_t *local,
                                       const coap_address_t *server, int proto,
                                       const lcp_pki_t *pki);
void *lcp_session_context_app_data(const coap_session_t *session);
int lcp_session_address(const coap_session_t *session, int remote, char *ip,
                        size_t iplen, uint16_t *port);
int lcp_session_state(const coap_session_t *session);
/* 1 after starting the session's token sequence at token; 0 on 4.2 (no sequence). */
int lcp_session_init_token(coap_session_t *session, size_t length, const uint8_t *token);
/* 1 if a server session we wrapped is still one libcoap knows (for generations
 * without the SERVER_SESSION_DEL event). */
int lcp_session_alive(coap_context_t *ctx, const coap_session_t *session,
                      const coap_address_t *remote, int ifindex);
void lcp_session_peer(const coap_session_t *session, coap_address_t *remote, int *ifindex);
static const int LCP_HAS_SERVER_SESSION_EVENTS;
static const int LCP_HAS_PSK_IDENTITY_CALLBACK;
int lcp_session_is_server(const coap_session_t *session);
int lcp_session_psk_identity(const coap_session_t *session, const uint8_t **identity,
                             size_t *length);
int lcp_session_proto(const coap_session_t *session);
void lcp_session_set_ack_timeout_ms(coap_session_t *session, unsigned int ms);
unsigned int lcp_session_get_ack_timeout_ms(const coap_session_t *session);
unsigned int lcp_session_get_ack_random_factor_milli(const coap_session_t *session);
unsigned int lcp_session_get_max_retransmit(const coap_session_t *session);
double lcp_session_max_transmit_wait(const coap_session_t *session);

/* Server side. */
int lcp_context_set_pki(coap_context_t *ctx, const lcp_pki_t *pki);
int lcp_context_set_psk(coap_context_t *ctx, const uint8_t *hint, size_t hint_len,
                        const uint8_t *key, size_t key_len, void *id_arg);
/* NULL with *error: the errno of a test bind (address in use, ...), or 0 where
 * libcoap itself refused. Port 0 picks a port no socket uses. */
coap_endpoint_t *lcp_new_endpoint(coap_context_t *ctx, const coap_address_t *addr,
                                  int proto, int *error);
coap_resource_t *lcp_resource_new(const uint8_t *path, size_t len, void *app_data);
coap_resource_t *lcp_resource_unknown_new(void *app_data);
void lcp_resource_handle(coap_resource_t *resource, int method);

/* PDUs. */

/* A new PDU for the session with a fresh message ID and token (token
 * copied to token_out, at most 8 bytes). NULL when out of memory. */
coap_pdu_t *lcp_new_request(coap_session_t *session, int type, int code,
                            uint8_t *token_out, size_t *token_len);
coap_pdu_t *lcp_new_request_with_token(coap_session_t *session, int type, int code,
                                       const uint8_t *token, size_t token_len);
int lcp_patch_block2(coap_pdu_t *pdu, const uint8_t *value, size_t len);
void lcp_pdu_info(const coap_pdu_t *pdu, lcp_pdu_info_t *out);
size_t lcp_pdu_pack_options(const coap_pdu_t *pdu, uint8_t *out, size_t room, int *blocks);
/* Claims (glue.c's "Claims"): a one-shot request's answer, taken in C. Arm claim
 * with the PDU's token, send the PDU (always consumed), then run one I/O pass of
 * up to wait_ms (< 0: none). Returns coap_send's message ID; < 0: not sent (the
 * claim is idle again). */
int lcp_send_claimed(coap_context_t *ctx, coap_session_t *session, coap_pdu_t *pdu,
                     lcp_claim_t *claim, int wait_ms);
/* request()'s common case: the PDU built from a prepared blob of packed options
 * (lcp_pack_option) and a payload, then as lcp_send_claimed. Besides its results:
 * LCP_NO_PDU, LCP_NO_ROOM_OPTION, LCP_NO_ROOM_PAYLOAD (nothing sent). A message ID
 * has LCP_QUIET added when the first pass answered and called no Python. */
#define LCP_NO_PDU ...
#define LCP_NO_ROOM_OPTION ...
#define LCP_NO_ROOM_PAYLOAD ...
#define LCP_QUIET ...
int lcp_request_claimed(coap_context_t *ctx, coap_session_t *session, lcp_claim_t *claim,
                        int type, int code, const uint8_t *blob, size_t blob_len,
                        const uint8_t *payload, size_t payload_len, int wait_ms);
/* Session.send() of a PDU pdu.py has not built yet: made with a fresh message ID
 * and token and the options of blob, then sent (coap_send's result, or LCP_NO_PDU,
 * LCP_NO_ROOM_OPTION). */
int lcp_send_new(coap_session_t *session, int type, int code, const uint8_t *blob,
                 size_t blob_len);
void lcp_claim_disarm(lcp_claim_t *c);
/* Passes until the claim is answered, Python was called, a wake-up, or timeout_ms. */
int lcp_io_wait(coap_context_t *ctx, const lcp_claim_t *claim, int timeout_ms);
/* A new idle claim (NULL: out of memory), and its destructor (for ffi.gc): safe
 * whatever state the claim is in, on any thread. */
lcp_claim_t *lcp_claim_new(void);
void lcp_claim_free(lcp_claim_t *c);
size_t lcp_pdu_options(const coap_pdu_t *pdu, uint16_t *numbers,
                       const uint8_t **values, size_t *lengths, size_t max);
void lcp_pdu_set_type(coap_pdu_t *pdu, int type);
void lcp_pdu_set_code(coap_pdu_t *pdu, int code);
void lcp_pdu_set_mid(coap_pdu_t *pdu, int mid);
int lcp_wake_attach(int coap_fd, int wake_fd);
int lcp_wake(int wake_fd);
int lcp_send_reply(coap_session_t *session, int type, int mid, const uint8_t *token,
                   size_t token_len, int code, const uint8_t *etag, size_t etag_len,
                   int cf, const uint8_t *payload, size_t len);
int lcp_add_data_large_request(coap_session_t *session, coap_pdu_t *pdu,
                               const uint8_t *data, size_t len);

/* Observe. */
void lcp_resource_observable(coap_resource_t *resource, int observable, int confirmable);
int lcp_observe_option(coap_resource_t *resource, coap_session_t *session,
                       const uint8_t *token, size_t len, unsigned int *value);
int lcp_cancel_observe(coap_session_t *session, const uint8_t *token, size_t len,
                       int confirmable);

void lcp_register_option(coap_context_t *ctx, uint16_t number);

/* Library information. */
int lcp_tcp_supported(void);
const char *lcp_tls_library_name(void);
uint64_t lcp_tls_library_version(void);

/* What the (D)TLS library under libcoap can do (1 = yes): see glue.c and
 * libcoap_py/capabilities.py, the one place that reads them. */
static const int LCP_TLS_CHECKS_REVOCATION;
static const int LCP_TLS_KEEPS_PSK_PKI_APART;
static const int LCP_TLS_PKI_CLIENT_BESIDE_PSK;
static const int LCP_TLS_RAISES_CLIENT_CONNECTED;

/* Server fast path */

#define LCP_SERVE_BLOCK1 1
#define LCP_SERVE_BLOCK2 2

void lcp_serve_read(const coap_session_t *session, const coap_pdu_t *request,
                    lcp_serve_info_t *out, char *scratch, size_t room);
int lcp_serve_reply(coap_session_t *session, coap_pdu_t *response, int code,
                    int content_format, const uint8_t *payload, size_t len);
int lcp_serve_io(coap_context_t *ctx, int timeout_ms, int *served, int passes);

/* sizeof(name) as the C compiler sees it, 0 for a name this build lacks
 * (tests/test_layout.py compares it with ffi.sizeof). */
size_t lcp_sizeof(const char *name);
