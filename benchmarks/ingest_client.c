/*
 * Load generator of benchmarks/service_ingest.py (libcoap 4.3, DTLS-PKI).
 *
 * Compiled by service_ingest.py at run time:
 *   cc -O2 ingest_client.c $(pkg-config --cflags --libs libcoap-3-openssl)
 *
 *   ingest_client URI CERTDIR SECONDS SIZE NAME...
 *
 * One context, one DTLS-PKI session per device NAME, each with its own
 * certificate (CERTDIR/NAME.crt, CERTDIR/NAME.key, CERTDIR/ca.crt). Each
 * session keeps exactly one CON POST /data (SIZE bytes) in flight: the next
 * is sent from the main loop once the answer came (never from the response
 * handler), as the Python generator (service_ingest.py "load") does.
 *
 * Protocol with the harness (as the Python generator):
 * 1. every session handshakes and gets one POST answered; then one JSON line:
 *    {"handshake_s", "connect_s": [...], "cpu_s"};
 * 2. the line "go" on stdin starts the timed run of SECONDS;
 * 3. then no new POST; what is in flight is waited for (30 s at most); one
 *    JSON line: {"answers", "wall", "cpu", "total_answers", "failures",
 *    "nacks", "unanswered", "with_payload"}. answers counts the 2.xx and
 *    other answers received during the timed run.
 */
#include <coap3/coap.h>

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static coap_context_t *ctx;
static coap_session_t **sessions;
static const char **names;
static unsigned long *seq;
static double *connected;
static int count;
static size_t size;
static uint8_t *body;
static double started;

static int *ready; /* sessions answered in this pass (a stack) */
static int n_ready;
static long in_flight;
static unsigned long answers, failures, nacks, with_payload;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
  fprintf(stderr, "ingest_client: %s\n", what);
  exit(2);
}

static coap_response_t on_response(coap_session_t *session, const coap_pdu_t *sent,
                                   const coap_pdu_t *received, const coap_mid_t mid) {
  intptr_t i = (intptr_t)coap_session_get_app_data(session);
  size_t len = 0;
  const uint8_t *data;
  (void)sent;
  (void)mid;
  if (coap_pdu_get_code(received) != COAP_RESPONSE_CODE_CHANGED)
    failures++;
  else if (coap_get_data(received, &len, &data) && len > 0)
    with_payload++;
  answers++;
  in_flight--;
  if (n_ready < count)
    ready[n_ready++] = (int)i;
  return COAP_RESPONSE_OK;
}

static void on_nack(coap_session_t *session, const coap_pdu_t *sent,
                    const coap_nack_reason_t reason, const coap_mid_t mid) {
  (void)session;
  (void)sent;
  (void)mid;
  fprintf(stderr, "ingest_client: NACK %d\n", (int)reason);
  nacks++;
  in_flight--;
}

static int on_event(coap_session_t *session, const coap_event_t event) {
  if (event == COAP_EVENT_DTLS_CONNECTED && session) {
    intptr_t i = (intptr_t)coap_session_get_app_data(session);
    if (i >= 0 && i < count && connected[i] < 0)
      connected[i] = now() - started;
  }
  return 0;
}

static void send_post(int i) {
  uint8_t token[8];
  size_t token_len;
  coap_session_t *s = sessions[i];
  coap_pdu_t *pdu = coap_pdu_init(COAP_MESSAGE_CON, COAP_REQUEST_CODE_POST,
                                  coap_new_message_id(s), coap_session_max_pdu_size(s));
  char text[96];
  int n;
  if (!pdu)
    die("cannot allocate a PDU");
  coap_session_new_token(s, &token_len, token);
  coap_add_token(pdu, token_len, token);
  coap_add_option(pdu, COAP_OPTION_URI_PATH, 4, (const uint8_t *)"data");
  seq[i]++;
  n = snprintf(text, sizeof text, "%s seq %08lu t=20.5C rh=41%% ", names[i], seq[i]);
  memset(body, '.', size);
  memcpy(body, text, (size_t)n < size ? (size_t)n : size);
  coap_add_data(pdu, size, body);
  in_flight++;
  if (coap_send(s, pdu) == COAP_INVALID_MID)
    die("coap_send failed");
}

static void wait_all(double seconds) {
  double deadline = now() + seconds;
  while (in_flight > 0 && now() < deadline)
    coap_io_process(ctx, 200);
}

int main(int argc, char **argv) {
  const char *uri, *dir;
  double seconds;
  coap_uri_t parsed;
  coap_address_t server;
  char host[64], line[16];
  static char ca[4096];

  if (argc < 6)
    die("usage: ingest_client URI CERTDIR SECONDS SIZE NAME...");
  uri = argv[1];
  dir = argv[2];
  seconds = atof(argv[3]);
  size = strtoul(argv[4], NULL, 10);
  names = (const char **)&argv[5];
  count = argc - 5;

  coap_startup();
  coap_set_log_level(LOG_ERR);
  if (coap_split_uri((const uint8_t *)uri, strlen(uri), &parsed) < 0 ||
      parsed.scheme != COAP_URI_SCHEME_COAPS)
    die("needs a coaps:// URI");
  {
    size_t len = parsed.host.length < sizeof host - 1 ? parsed.host.length : sizeof host - 1;
    memcpy(host, parsed.host.s, len);
    host[len] = '\0';
  }
  coap_address_init(&server);
  server.addr.sin.sin_family = AF_INET;
  server.addr.sin.sin_port = htons(parsed.port);
  if (inet_pton(AF_INET, host, &server.addr.sin.sin_addr) != 1)
    die("the URI host must be an IPv4 literal");
  server.size = sizeof server.addr.sin;
  snprintf(ca, sizeof ca, "%s/ca.crt", dir);

  body = malloc(size ? size : 1);
  sessions = calloc(count, sizeof *sessions);
  seq = calloc(count, sizeof *seq);
  connected = malloc(count * sizeof *connected);
  ready = calloc(count + 1, sizeof *ready);
  ctx = coap_new_context(NULL);
  if (!ctx || !body || !sessions || !seq || !connected || !ready)
    die("out of memory");
  coap_register_response_handler(ctx, on_response);
  coap_register_nack_handler(ctx, on_nack);
  coap_register_event_handler(ctx, on_event);

  started = now();
  for (int i = 0; i < count; i++) {
    /* Per session: libcoap copies the file names' contents when the session's
     * handshake starts, so each buffer lives until the end (never freed). */
    char *cert = malloc(4096), *key = malloc(4096);
    coap_dtls_pki_t setup;
    if (!cert || !key)
      die("out of memory");
    snprintf(cert, 4096, "%s/%s.crt", dir, names[i]);
    snprintf(key, 4096, "%s/%s.key", dir, names[i]);
    memset(&setup, 0, sizeof setup);
    setup.version = COAP_DTLS_PKI_SETUP_VERSION;
    setup.verify_peer_cert = 1;
    setup.check_common_ca = 1;
    setup.cert_chain_validation = 1;
    setup.cert_chain_verify_depth = 2;
    setup.pki_key.key_type = COAP_PKI_KEY_PEM;
    setup.pki_key.key.pem.public_cert = cert;
    setup.pki_key.key.pem.private_key = key;
    setup.pki_key.key.pem.ca_file = ca;
    connected[i] = -1;
    sessions[i] = coap_new_client_session_pki(ctx, NULL, &server, COAP_PROTO_DTLS, &setup);
    if (!sessions[i])
      die("cannot create a session");
    coap_session_set_app_data(sessions[i], (void *)(intptr_t)i);
  }

  /* 1. handshakes, one POST answered on each session */
  for (int i = 0; i < count; i++)
    send_post(i);
  wait_all(60);
  if (in_flight > 0 || nacks)
    die("handshakes: sessions unanswered");
  n_ready = 0;
  printf("{\"handshake_s\": %.6f, \"connect_s\": [", now() - started);
  for (int i = 0; i < count; i++)
    printf("%s%.6f", i ? ", " : "", connected[i]);
  printf("], \"cpu_s\": %.6f}\n", cpu_seconds());
  fflush(stdout);

  /* 2. the timed run */
  if (!fgets(line, sizeof line, stdin) || strncmp(line, "go", 2) != 0)
    die("expected 'go'");
  for (int i = 0; i < count; i++)
    send_post(i);
  unsigned long first = answers;
  double wall = now(), cpu = cpu_seconds(), end = wall + seconds;
  for (;;) {
    double t = now();
    int wait_ms;
    if (t >= end)
      break;
    wait_ms = (int)((end - t) * 1000);
    wait_ms = wait_ms < 1 ? 1 : wait_ms > 200 ? 200 : wait_ms;
    coap_io_process(ctx, wait_ms);
    while (n_ready > 0)
      send_post(ready[--n_ready]);
  }
  unsigned long timed = answers - first;
  wall = now() - wall;
  cpu = cpu_seconds() - cpu;

  /* 3. drain */
  n_ready = 0;
  wait_all(30);
  printf("{\"answers\": %lu, \"wall\": %.6f, \"cpu\": %.6f, \"total_answers\": %lu, "
         "\"failures\": %lu, \"nacks\": %lu, \"unanswered\": %ld, \"with_payload\": %lu}\n",
         timed, wall, cpu, answers, failures, nacks, in_flight, with_payload);
  fflush(stdout);
  coap_free_context(ctx);
  coap_cleanup();
  return 0;
}
