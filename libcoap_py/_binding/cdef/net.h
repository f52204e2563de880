/* net.h, shared part. */
static const int COAP_NACK_TOO_MANY_RETRIES;
static const int COAP_NACK_NOT_DELIVERABLE;
static const int COAP_NACK_RST;
static const int COAP_NACK_TLS_FAILED;
static const int COAP_NACK_ICMP_ISSUE;


coap_context_t *coap_new_context(const coap_address_t *listen_addr);
void coap_free_context(coap_context_t *context);
void coap_context_set_keepalive(coap_context_t *context, unsigned int seconds);
void coap_set_app_data(coap_context_t *context, void *data);
void *coap_get_app_data(const coap_context_t *context);
int coap_can_exit(coap_context_t *context);
int coap_context_get_coap_fd(const coap_context_t *context);
