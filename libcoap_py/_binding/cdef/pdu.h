/* pdu.h: constants shared by both generations (values come from the C headers). */
static const int COAP_MESSAGE_CON;
static const int COAP_MESSAGE_NON;
static const int COAP_MESSAGE_ACK;
static const int COAP_MESSAGE_RST;

static const int COAP_REQUEST_GET;
static const int COAP_REQUEST_POST;
static const int COAP_REQUEST_PUT;
static const int COAP_REQUEST_DELETE;
static const int COAP_REQUEST_FETCH;
static const int COAP_REQUEST_PATCH;
static const int COAP_REQUEST_IPATCH;

/* Response codes: COAP_RESPONSE_CODE(404) is 4.04 (class << 5 | detail). A macro
 * in both generations; cffi's API mode calls it like a function. */
int COAP_RESPONSE_CODE(int n);

static const int COAP_SIGNALING_CSM;
static const int COAP_SIGNALING_PING;
static const int COAP_SIGNALING_PONG;
static const int COAP_SIGNALING_RELEASE;
static const int COAP_SIGNALING_ABORT;

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
static const int COAP_OPTION_NORESPONSE;

static const int COAP_MEDIATYPE_TEXT_PLAIN;
static const int COAP_MEDIATYPE_APPLICATION_LINK_FORMAT;
static const int COAP_MEDIATYPE_APPLICATION_XML;
static const int COAP_MEDIATYPE_APPLICATION_OCTET_STREAM;
static const int COAP_MEDIATYPE_APPLICATION_EXI;
static const int COAP_MEDIATYPE_APPLICATION_JSON;
static const int COAP_MEDIATYPE_APPLICATION_CBOR;
static const int COAP_MEDIATYPE_APPLICATION_SENML_JSON;
static const int COAP_MEDIATYPE_APPLICATION_SENSML_JSON;
static const int COAP_MEDIATYPE_APPLICATION_SENML_CBOR;
static const int COAP_MEDIATYPE_APPLICATION_SENSML_CBOR;

static const int COAP_PROTO_NONE;
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
