/* pdu.h: constants shared by both generations (values come from the C headers). */
static const int COAP_MESSAGE_CON;
static const int COAP_MESSAGE_NON;
static const int COAP_MESSAGE_ACK;
static const int COAP_MESSAGE_RST;

static const int COAP_REQUEST_GET;
static const int COAP_REQUEST_POST;
static const int COAP_REQUEST_PUT;
static const int COAP_REQUEST_DELETE;

static const int COAP_OPTION_IF_MATCH;
static const int COAP_OPTION_URI_HOST;
static const int COAP_OPTION_ETAG;
static const int COAP_OPTION_IF_NONE_MATCH;
static const int COAP_OPTION_OBSERVE;
static const int COAP_OPTION_URI_PORT;
static const int COAP_OPTION_LOCATION_PATH;
static const int COAP_OPTION_URI_PATH;
static const int COAP_OPTION_CONTENT_FORMAT;
static const int COAP_OPTION_MAXAGE;
static const int COAP_OPTION_URI_QUERY;
static const int COAP_OPTION_ACCEPT;
static const int COAP_OPTION_LOCATION_QUERY;
static const int COAP_OPTION_BLOCK2;
static const int COAP_OPTION_BLOCK1;
static const int COAP_OPTION_SIZE2;
static const int COAP_OPTION_PROXY_URI;
static const int COAP_OPTION_PROXY_SCHEME;
static const int COAP_OPTION_SIZE1;

static const int COAP_PROTO_UDP;
static const int COAP_PROTO_DTLS;
static const int COAP_PROTO_TCP;
static const int COAP_PROTO_TLS;

static const int COAP_DEFAULT_PORT;
static const int COAPS_DEFAULT_PORT;

const char *coap_response_phrase(unsigned char code);
int coap_add_token(coap_pdu_t *pdu, size_t len, const uint8_t *data);
int coap_add_data(coap_pdu_t *pdu, size_t len, const uint8_t *data);
void coap_delete_pdu(coap_pdu_t *pdu);
