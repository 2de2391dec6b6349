/*
 * The small packets: PINGREQ, DISCONNECT (with the v5 reason and session
 * expiry rules) and AUTH (tern offers no enhanced authentication method, so
 * an AUTH packet is a protocol error: MQTT 5 §4.12).
 */
#include <string.h>

#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/worker.h"

int handle_pingreq(struct conn *c, struct mqtt_packet *p)
{
	struct mqtt_packet r;

	(void)p;
	memset(&r, 0, sizeof(r));
	r.type = MQTT_PINGRESP;
	conn_send(c, &r);
	return 0;
}

int handle_disconnect(struct conn *c, struct mqtt_packet *p)
{
	const struct mqtt_disconnect *d = &p->u.disconnect;

	if (c->version == MQTT_V5 &&
	    (d->props.present & MQTT_PBIT(MQTT_PROP_SESSION_EXPIRY))) {
		/* MQTT 5 §3.14.2.2.2: 0 in CONNECT cannot become non-zero. */
		if (c->session_expiry == 0 && d->props.session_expiry != 0) {
			conn_close(c, MQTT_RC_PROTOCOL_ERROR,
			           "session expiry set after 0 at CONNECT");
			return TERN_EPROTO;
		}
		c->session_expiry = d->props.session_expiry;
	}
	c->normal_disconnect = true;
	c->will_now = c->version == MQTT_V5 &&
	              d->reason == MQTT_RC_DISCONNECT_WITH_WILL;
	conn_close(c, 0, "disconnected");
	return TERN_ECLOSED;
}

int handle_auth(struct conn *c, struct mqtt_packet *p)
{
	(void)p;
	conn_close(c, MQTT_RC_PROTOCOL_ERROR,
	           "AUTH without an authentication method");
	return TERN_EPROTO;
}
