/* pdu.h, libcoap 4.2: the PDU is a public structure. */
static const int COAP_INVALID_TID;

/* 0: libcoap 4.2 has no COAP_EMPTY_CODE, no names for the options OSCORE, Hop-Limit,
 * Echo, Request-Tag, Q-Block1 and Q-Block2, no COAP_MEDIATYPE_APPLICATION_CWT
 * (v3/pdu.h declares them; codes.py uses the numbers). */
static const int LCP_HAS_EMPTY_CODE;
static const int LCP_HAS_OPTION_NAMES_43;
static const int LCP_HAS_MEDIATYPE_CWT;
static const int LCP_HAS_Q_BLOCK_OPTIONS;

typedef struct coap_pdu_t {
  uint8_t type;
  uint8_t code;
  uint8_t token_length;
  uint16_t tid;
  size_t max_size;
  size_t used_size;
  uint8_t *token;
  uint8_t *data;
  ...;
} coap_pdu_t;

coap_pdu_t *coap_pdu_init(uint8_t type, uint8_t code, uint16_t tid, size_t size);
coap_pdu_t *coap_new_pdu(const coap_session_t *session);
size_t coap_add_option(coap_pdu_t *pdu, uint16_t type, unsigned int len,
                       const uint8_t *data);
int coap_get_data(const coap_pdu_t *pdu, size_t *len, uint8_t **data);
