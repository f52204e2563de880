/* coap_debug.h, shared part. */
typedef int... coap_log_t;
static const int LOG_EMERG;
static const int LOG_ALERT;
static const int LOG_CRIT;
static const int LOG_ERR;
static const int LOG_WARNING;
static const int LOG_NOTICE;
static const int LOG_INFO;
static const int LOG_DEBUG;
static const int COAP_LOG_CIPHERS;

typedef void (*coap_log_handler_t)(coap_log_t level, const char *message);
coap_log_t coap_get_log_level(void);
void coap_set_log_level(coap_log_t level);
void coap_set_log_handler(coap_log_handler_t handler);
const char *coap_package_name(void);
const char *coap_package_version(void);
void coap_show_pdu(coap_log_t level, const coap_pdu_t *pdu);
void coap_set_show_pdu_output(int use_fprintf);
char *coap_string_tls_version(char *buffer, size_t bufsize);
