/* Opaque handles and small types that both libcoap generations share. */
typedef struct coap_context_t coap_context_t;
typedef struct coap_session_t coap_session_t;
typedef struct coap_pdu_t coap_pdu_t;
typedef struct coap_endpoint_t coap_endpoint_t;
typedef struct coap_resource_t coap_resource_t;
typedef uint8_t coap_opt_t;

void coap_startup(void);
void coap_cleanup(void);
