/* pdu.h, libcoap 4.3: opaque PDUs with accessor functions. */
typedef int... coap_pdu_type_t;
typedef int... coap_pdu_code_t;
typedef int... coap_proto_t;

static const int COAP_INVALID_MID;

/* Names 4.2 does not have (codes.py takes the number itself where a flag is 0;
 * glue.c sets the flags). */
static const int LCP_HAS_EMPTY_CODE;
static const int COAP_EMPTY_CODE;
static const int LCP_HAS_OPTION_NAMES_43;
static const int COAP_OPTION_OSCORE;
static const int COAP_OPTION_HOP_LIMIT;
static const int COAP_OPTION_ECHO;
static const int COAP_OPTION_RTAG;
static const int LCP_HAS_MEDIATYPE_CWT;
static const int COAP_MEDIATYPE_APPLICATION_CWT;
/* Q-Block (RFC 9177) options: named from 4.3.2 on. */
static const int LCP_HAS_Q_BLOCK_OPTIONS;
/* @since 4.3.2 */
static const int COAP_OPTION_Q_BLOCK1;
static const int COAP_OPTION_Q_BLOCK2;
/* @end */

coap_pdu_t *coap_pdu_init(coap_pdu_type_t type, coap_pdu_code_t code,
                          coap_mid_t mid, size_t size);
coap_pdu_t *coap_new_pdu(coap_pdu_type_t type, coap_pdu_code_t code,
                         coap_session_t *session);
size_t coap_add_option(coap_pdu_t *pdu, coap_option_num_t number, size_t len,
                       const uint8_t *data);
coap_pdu_code_t coap_pdu_get_code(const coap_pdu_t *pdu);
void coap_pdu_set_code(coap_pdu_t *pdu, coap_pdu_code_t code);
coap_pdu_type_t coap_pdu_get_type(const coap_pdu_t *pdu);
void coap_pdu_set_type(coap_pdu_t *pdu, coap_pdu_type_t type);
coap_bin_const_t coap_pdu_get_token(const coap_pdu_t *pdu);
coap_mid_t coap_pdu_get_mid(const coap_pdu_t *pdu);
void coap_pdu_set_mid(coap_pdu_t *pdu, coap_mid_t mid);
int coap_get_data(const coap_pdu_t *pdu, size_t *len, const uint8_t **data);
