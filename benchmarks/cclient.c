/*
 * C reference client of the libcoap-py benchmarks (libcoap 4.3).
 *
 * Compiled by benchmarks/run.py at run time:
 *   cc -O2 cclient.c $(pkg-config --cflags --libs libcoap-3-openssl)
 *
 *   cclient MODE URI N [-P path] [-s sessions] [-w warmup] [-b bytes]
 *           [-u identity -k key] [-c cert -j key -C ca] [-x extra-ns] [-H]
 *
 * It does what the Python contenders do, nothing more: requests are sent
 * from the main loop, the handler only counts; except with -H (get, post):
 * the response handler sends the next request itself (a fresh PDU, with the
 * Uri-Path of -P), and the main loop runs coap_io_process() until
 * coap_can_exit(), the shape of libcoap's client samples. The timed loop
 * follows a warm-up; the result is one JSON line on stdout: {"ops", "wall",
 * "cpu", "sys" (of cpu, in the kernel), "vcsw" and "ivcsw" (voluntary and
 * involuntary context switches), "rss_before_kib", "rss_after_kib"}.
 *
 * Modes: get (sequential CON GET), post (sequential CON POST of -b bytes),
 * inflight (-s sessions, one request in flight on each), handshake (new
 * session, one GET, release), idle (-s sessions, each handshaken with one
 * GET, then left idle), growth (sequential GET, RSS before and after),
 * first (the DTLS client sample's whole run, N times: a new context and
 * session, one CON POST of -b bytes to -P, coap_io_process() until
 * coap_can_exit(), release, free the context).
 * A coaps:// URI with -k makes PSK sessions, with -c certificate sessions.
 */
#include <coap3/coap.h>

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static coap_context_t *ctx;
static coap_address_t server;
static coap_proto_t proto = COAP_PROTO_UDP;
static const char *path = "";
static const char *identity = "bench";
static const char *psk_key;
static const char *cert_file, *key_file, *ca_file;
static size_t body_size = 1024;
static uint8_t *body;
static coap_pdu_code_t method = COAP_REQUEST_CODE_GET;

/* Per session: responses received, and whether one is still awaited. */
static unsigned long *answered;
static int *waiting;
static unsigned long responses, failures;
/* -H: requests the response handler still sends (the in-handler shape). */
static int in_handler;
static unsigned long chain_left;

static void send_request(coap_session_t *s);

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The timed loop's wall and CPU seconds, CPU in the kernel, and context
 * switches: voluntary (a wait that slept) and involuntary (preempted, as by
 * the server woken on this core): start_timer(), stop_timer(). */
static double wall, cpu, sys_cpu;
static long vcsw, ivcsw;

static double seconds(struct timeval tv) { return tv.tv_sec + tv.tv_usec / 1e6; }

static void start_timer(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  cpu = seconds(ru.ru_utime) + seconds(ru.ru_stime);
  sys_cpu = seconds(ru.ru_stime);
  vcsw = ru.ru_nvcsw;
  ivcsw = ru.ru_nivcsw;
  wall = now();
}

static void stop_timer(void) {
  struct rusage ru;
  wall = now() - wall;
  getrusage(RUSAGE_SELF, &ru);
  cpu = seconds(ru.ru_utime) + seconds(ru.ru_stime) - cpu;
  sys_cpu = seconds(ru.ru_stime) - sys_cpu;
  vcsw = ru.ru_nvcsw - vcsw;
  ivcsw = ru.ru_nivcsw - ivcsw;
}

static long rss_kib(void) {
  char line[256];
  long kib = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (!f)
    return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld", &kib) == 1)
      break;
  fclose(f);
  return kib;
}

static void die(const char *what) {
  fprintf(stderr, "cclient: %s\n", what);
  exit(2);
}

static coap_response_t on_response(coap_session_t *session, const coap_pdu_t *sent,
                                   const coap_pdu_t *received, const coap_mid_t mid) {
  intptr_t i = (intptr_t)coap_session_get_app_data(session);
  (void)sent;
  (void)mid;
  if (COAP_RESPONSE_CLASS(coap_pdu_get_code(received)) != 2)
    failures++;
  answered[i]++;
  waiting[i] = 0;
  responses++;
  if (in_handler && chain_left > 0) {
    chain_left--;
    send_request(session); /* a fresh PDU, sent from inside the handler */
  }
  return COAP_RESPONSE_OK;
}

static void on_nack(coap_session_t *session, const coap_pdu_t *sent,
                    const coap_nack_reason_t reason, const coap_mid_t mid) {
  (void)session;
  (void)sent;
  (void)mid;
  fprintf(stderr, "cclient: NACK %d\n", (int)reason);
  exit(3);
}

static coap_session_t *new_session(intptr_t index) {
  coap_session_t *s;
  if (proto == COAP_PROTO_UDP) {
    s = coap_new_client_session(ctx, NULL, &server, proto);
  } else if (psk_key) {
    coap_dtls_cpsk_t setup;
    memset(&setup, 0, sizeof setup);
    setup.version = COAP_DTLS_CPSK_SETUP_VERSION;
    setup.psk_info.identity.s = (const uint8_t *)identity;
    setup.psk_info.identity.length = strlen(identity);
    setup.psk_info.key.s = (const uint8_t *)psk_key;
    setup.psk_info.key.length = strlen(psk_key);
    s = coap_new_client_session_psk2(ctx, NULL, &server, proto, &setup);
  } else {
    coap_dtls_pki_t setup;
    memset(&setup, 0, sizeof setup);
    setup.version = COAP_DTLS_PKI_SETUP_VERSION;
    setup.verify_peer_cert = 1;
    setup.check_common_ca = 1;
    setup.cert_chain_validation = 1;
    setup.cert_chain_verify_depth = 2;
    setup.pki_key.key_type = COAP_PKI_KEY_PEM;
    setup.pki_key.key.pem.public_cert = cert_file;
    setup.pki_key.key.pem.private_key = key_file;
    setup.pki_key.key.pem.ca_file = ca_file;
    s = coap_new_client_session_pki(ctx, NULL, &server, proto, &setup);
  }
  if (!s)
    die("cannot create a session");
  coap_session_set_app_data(s, (void *)index);
  return s;
}

static void send_request(coap_session_t *s) {
  uint8_t token[8];
  size_t token_len;
  intptr_t i = (intptr_t)coap_session_get_app_data(s);
  coap_pdu_t *pdu = coap_pdu_init(COAP_MESSAGE_CON, method, coap_new_message_id(s),
                                  coap_session_max_pdu_size(s));
  if (!pdu)
    die("cannot allocate a PDU");
  coap_session_new_token(s, &token_len, token);
  coap_add_token(pdu, token_len, token);
  if (*path)
    coap_add_option(pdu, COAP_OPTION_URI_PATH, strlen(path), (const uint8_t *)path);
  if (method == COAP_REQUEST_CODE_POST)
    coap_add_data(pdu, body_size, body);
  waiting[i] = 1;
  if (coap_send(s, pdu) == COAP_INVALID_MID)
    die("coap_send failed");
}

/* Drive the loop until session i has no request waiting (bounded: 30 s). */
static void wait_for(intptr_t i) {
  double deadline = now() + 30;
  while (waiting[i]) {
    coap_io_process(ctx, 1000);
    if (now() > deadline)
      die("no response within 30 s");
  }
}

/* -x NS: a yardstick, not a contender: NS nanoseconds of busy work after each
 * answer, before the next request goes out (where a Python client runs its
 * own code). Shows what a few microseconds more per request cost in
 * sequential throughput on this machine. */
static long extra_ns;

static void busy(long ns) {
  double until = now() + ns / 1e9;
  while (now() < until)
    ;
}

/* Run the I/O loop until libcoap has nothing left to send or retransmit, as
 * the C samples do (bounded: 30 s). */
static void run_until_exit(void) {
  double deadline = now() + 30;
  while (!coap_can_exit(ctx)) {
    coap_io_process(ctx, 1000);
    if (now() > deadline)
      die("no response within 30 s");
  }
}

static void sequential(coap_session_t *s, unsigned long n) {
  if (in_handler) {
    /* The first request from here, the other n - 1 from the response handler. */
    if (n == 0)
      return;
    chain_left = n - 1;
    send_request(s);
    run_until_exit();
    if (chain_left || waiting[0])
      die("the in-handler chain stopped early");
    return;
  }
  for (unsigned long k = 0; k < n; k++) {
    send_request(s);
    wait_for(0);
    if (extra_ns)
      busy(extra_ns);
  }
}

/* Keep one request in flight on each of the sessions until n responses. */
static void in_flight(coap_session_t **sessions, int count, unsigned long n) {
  unsigned long target = responses + n, sent = 0;
  double deadline = now() + 60;
  for (int i = 0; i < count && sent < n; i++, sent++)
    send_request(sessions[i]);
  while (responses < target) {
    coap_io_process(ctx, 1000);
    for (int i = 0; i < count && sent < n; i++)
      if (!waiting[i]) {
        send_request(sessions[i]);
        sent++;
      }
    if (now() > deadline)
      die("in-flight run did not finish within 60 s");
  }
}

static void handlers(void) {
  coap_context_set_block_mode(ctx, COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
  coap_register_response_handler(ctx, on_response);
  coap_register_nack_handler(ctx, on_nack);
}

/* The DTLS client sample, n times over: a fresh context and session each. */
static void first_requests(unsigned long n) {
  for (unsigned long k = 0; k < n; k++) {
    coap_session_t *s;
    unsigned long before = responses;
    ctx = coap_new_context(NULL);
    if (!ctx)
      die("cannot create a context");
    handlers();
    s = new_session(0);
    send_request(s);
    run_until_exit();
    if (responses != before + 1)
      die("no response before coap_can_exit()");
    coap_session_release(s);
    coap_free_context(ctx);
    ctx = NULL;
  }
}

static void handshakes(unsigned long n) {
  for (unsigned long k = 0; k < n; k++) {
    coap_session_t *s = new_session(0);
    send_request(s);
    wait_for(0);
    coap_session_release(s);
  }
}

int main(int argc, char **argv) {
  const char *mode, *uri;
  unsigned long n, warmup = 100;
  int sessions = 1, opt;
  coap_uri_t parsed;

  if (argc < 4)
    die("usage: cclient MODE URI N [options]");
  mode = argv[1];
  uri = argv[2];
  n = strtoul(argv[3], NULL, 10);
  optind = 4;
  while ((opt = getopt(argc, argv, "P:s:w:b:u:k:c:j:C:m:x:H")) != -1) {
    switch (opt) {
    case 'P': path = optarg; break;
    case 's': sessions = atoi(optarg); break;
    case 'w': warmup = strtoul(optarg, NULL, 10); break;
    case 'b': body_size = strtoul(optarg, NULL, 10); break;
    case 'u': identity = optarg; break;
    case 'k': psk_key = optarg; break;
    case 'c': cert_file = optarg; break;
    case 'j': key_file = optarg; break;
    case 'C': ca_file = optarg; break;
    case 'x': extra_ns = strtol(optarg, NULL, 10); break;
    case 'H': in_handler = 1; break;
    default: die("unknown option");
    }
  }
  if (sessions < 1)
    sessions = 1;

  coap_startup();
  coap_set_log_level(LOG_ERR);
  if (coap_split_uri((const uint8_t *)uri, strlen(uri), &parsed) < 0)
    die("bad URI");
  if (parsed.scheme == COAP_URI_SCHEME_COAPS)
    proto = COAP_PROTO_DTLS;
  else if (parsed.scheme != COAP_URI_SCHEME_COAP)
    die("only coap:// and coaps://");
  {
    char host[64];
    size_t len = parsed.host.length < sizeof host - 1 ? parsed.host.length : sizeof host - 1;
    memcpy(host, parsed.host.s, len);
    host[len] = '\0';
    coap_address_init(&server);
    server.addr.sin.sin_family = AF_INET;
    server.addr.sin.sin_port = htons(parsed.port);
    if (inet_pton(AF_INET, host, &server.addr.sin.sin_addr) != 1)
      die("the URI host must be an IPv4 literal");
    server.size = sizeof server.addr.sin;
  }
  if (proto == COAP_PROTO_DTLS && !psk_key && !(cert_file && key_file && ca_file))
    die("coaps:// needs -k, or -c -j -C");

  body = malloc(body_size ? body_size : 1);
  memset(body, 'x', body_size);
  if (strcmp(mode, "post") == 0 || strcmp(mode, "first") == 0)
    method = COAP_REQUEST_CODE_POST;
  answered = calloc(sessions, sizeof *answered);
  waiting = calloc(sessions, sizeof *waiting);

  long rss_before = 0, rss_after = 0;
  unsigned long ops = n;

  if (strcmp(mode, "first") == 0) {
    /* Each run makes and frees its own context. */
    first_requests(warmup);
    rss_before = rss_kib();
    start_timer();
    first_requests(n);
    stop_timer();
    rss_after = rss_kib();
    goto done;
  }

  ctx = coap_new_context(NULL);
  if (!ctx)
    die("cannot create a context");
  handlers();

  if (strcmp(mode, "get") == 0 || strcmp(mode, "post") == 0 || strcmp(mode, "growth") == 0) {
    coap_session_t *s = new_session(0);
    sequential(s, warmup);
    rss_before = rss_kib();
    start_timer();
    sequential(s, n);
    stop_timer();
    rss_after = rss_kib();
    coap_session_release(s);
  } else if (strcmp(mode, "inflight") == 0) {
    coap_session_t **all = calloc(sessions, sizeof *all);
    for (int i = 0; i < sessions; i++)
      all[i] = new_session(i);
    in_flight(all, sessions, warmup > (unsigned long)sessions ? warmup : (unsigned long)sessions);
    rss_before = rss_kib();
    start_timer();
    in_flight(all, sessions, n);
    stop_timer();
    rss_after = rss_kib();
    for (int i = 0; i < sessions; i++)
      coap_session_release(all[i]);
  } else if (strcmp(mode, "handshake") == 0) {
    handshakes(warmup);
    rss_before = rss_kib();
    start_timer();
    handshakes(n);
    stop_timer();
    rss_after = rss_kib();
  } else if (strcmp(mode, "idle") == 0) {
    /* n sessions, handshaken 50 at a time, one GET each; then RSS. */
    coap_session_t **all = calloc(n, sizeof *all);
    free(answered);
    free(waiting);
    answered = calloc(n, sizeof *answered);
    waiting = calloc(n, sizeof *waiting);
    rss_before = rss_kib();
    start_timer();
    for (unsigned long first = 0; first < n; first += 50) {
      unsigned long last = first + 50 < n ? first + 50 : n;
      for (unsigned long i = first; i < last; i++) {
        all[i] = new_session((intptr_t)i);
        send_request(all[i]);
      }
      for (unsigned long i = first; i < last; i++)
        wait_for((intptr_t)i);
    }
    stop_timer();
    rss_after = rss_kib();
    for (unsigned long i = 0; i < n; i++)
      coap_session_release(all[i]);
  } else {
    die("unknown mode");
  }

  coap_free_context(ctx);
done:
  if (failures)
    fprintf(stderr, "cclient: %lu responses were not 2.xx\n", failures);
  printf("{\"ops\": %lu, \"wall\": %.6f, \"cpu\": %.6f, \"sys\": %.6f, \"vcsw\": %ld, "
         "\"ivcsw\": %ld, \"rss_before_kib\": %ld, \"rss_after_kib\": %ld, \"failures\": %lu}\n",
         ops, wall, cpu, sys_cpu, vcsw, ivcsw, rss_before, rss_after, failures);
  coap_cleanup();
  return failures ? 1 : 0;
}
