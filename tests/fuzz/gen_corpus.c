/*
 * Writes the seed corpus of packet_fuzz: one valid packet of every type for
 * every protocol level, with v5 properties where the packet allows them.
 * Not part of the build; run it by hand when the codec gains a feature:
 *   cc -Isrc tests/fuzz/gen_corpus.c src/mqtt/packet.c src/mqtt/props.c \
 *      src/mqtt/topic.c src/base/utf8.c -o /tmp/gen
 *   /tmp/gen tests/fuzz/corpus/packet
 */
#include <stdio.h>
#include <string.h>

#include "mqtt/packet.h"

#define S(lit) ((struct mqtt_str){(const uint8_t *)(lit), sizeof(lit) - 1})
#define B(lit) ((struct mqtt_bin){(const uint8_t *)(lit), sizeof(lit) - 1})
#define PB(id) MQTT_PBIT(MQTT_PROP_##id)

static const uint8_t user_wire[] = {0x26, 0, 1, 'k', 0, 1, 'v'};
static const uint32_t sub_ids[] = {1, 300};
static const uint8_t codes[] = {0, 1, 2, 0x80};
static const struct mqtt_sub_entry subs[] = {
        {S("a/+/c"), 1, true, true, 1},
        {S("$share/g/#"), 2, false, false, 2},
};
static const char *dir;

static void with_user(struct mqtt_props *p)
{
	p->present |= PB(USER_PROPERTY);
	p->user_props = user_wire;
	p->user_props_len = sizeof(user_wire);
	p->user_prop_count = 1;
}

static void save(const struct mqtt_packet *p, uint8_t v, const char *tag)
{
	uint8_t out[512];
	char path[256];
	int n = mqtt_encode(p, v, out, sizeof(out));
	FILE *f;

	if (n < 0)
		return; /* not expressible at this level (AUTH in v3) */
	snprintf(path, sizeof(path), "%s/v%d_%s%s", dir, v,
	         mqtt_type_name(p->type), tag);
	f = fopen(path, "wb");
	if (!f || fwrite(out, 1, (size_t)n, f) != (size_t)n) {
		perror(path);
		return;
	}
	fclose(f);
}

static void gen_connect(uint8_t v)
{
	struct mqtt_packet p = {.type = MQTT_CONNECT};
	struct mqtt_connect *c = &p.u.connect;

	c->clean = true;
	c->keepalive = 30;
	c->client_id = S("fuzz");
	save(&p, v, "");
	c->will = true;
	c->will_qos = 1;
	c->will_topic = S("w/t");
	c->will_payload = B("gone");
	c->has_username = c->has_password = true;
	c->username = S("u");
	c->password = B("p");
	c->props.present = PB(SESSION_EXPIRY) | PB(RECEIVE_MAXIMUM) |
	                   PB(MAXIMUM_PACKET_SIZE) | PB(AUTH_METHOD) |
	                   PB(AUTH_DATA) | PB(REQUEST_PROBLEM_INFO);
	c->props.session_expiry = 60;
	c->props.receive_maximum = 10;
	c->props.maximum_packet_size = 4096;
	c->props.auth_method = S("m");
	c->props.auth_data = B("d");
	with_user(&c->props);
	c->will_props.present = PB(WILL_DELAY) | PB(PAYLOAD_FORMAT) |
	                        PB(CONTENT_TYPE) | PB(CORRELATION_DATA);
	c->will_props.will_delay = 5;
	c->will_props.payload_format = 1;
	c->will_props.content_type = S("text/plain");
	c->will_props.correlation_data = B("\x01\x02");
	with_user(&c->will_props);
	save(&p, v, "_full");
}

static void gen_connack(uint8_t v)
{
	struct mqtt_packet p = {.type = MQTT_CONNACK};
	struct mqtt_props *pr = &p.u.connack.props;

	p.u.connack.session_present = true;
	pr->present = PB(ASSIGNED_CLIENT_ID) | PB(SERVER_KEEP_ALIVE) |
	              PB(TOPIC_ALIAS_MAXIMUM) | PB(MAXIMUM_QOS) |
	              PB(RETAIN_AVAILABLE) | PB(WILDCARD_SUB_AVAILABLE) |
	              PB(SUB_ID_AVAILABLE) | PB(SHARED_SUB_AVAILABLE) |
	              PB(RESPONSE_INFO) | PB(SERVER_REFERENCE) |
	              PB(REASON_STRING);
	pr->assigned_client_id = S("id");
	pr->server_keep_alive = 10;
	pr->topic_alias_maximum = 8;
	pr->maximum_qos = 1;
	pr->retain_available = 1;
	pr->response_info = S("r/");
	pr->server_reference = S("s");
	pr->reason_string = S("ok");
	save(&p, v, "");
}

static void gen_publish(uint8_t v)
{
	struct mqtt_packet p = {.type = MQTT_PUBLISH};
	struct mqtt_publish *pub = &p.u.publish;

	pub->topic = S("a/b");
	pub->payload = (const uint8_t *)"hello";
	pub->payload_len = 5;
	save(&p, v, "_qos0");
	pub->qos = 2;
	pub->dup = pub->retain = true;
	pub->packet_id = 77;
	pub->props.present = PB(PAYLOAD_FORMAT) | PB(MESSAGE_EXPIRY) |
	                     PB(CONTENT_TYPE) | PB(RESPONSE_TOPIC) |
	                     PB(CORRELATION_DATA) | PB(TOPIC_ALIAS) |
	                     PB(SUBSCRIPTION_ID);
	pub->props.message_expiry = 100;
	pub->props.content_type = S("c");
	pub->props.response_topic = S("r");
	pub->props.correlation_data = B("x");
	pub->props.topic_alias = 2;
	pub->props.sub_ids = sub_ids;
	pub->props.sub_id_count = 2;
	with_user(&pub->props);
	save(&p, v, "_qos2");
	pub->topic = S("");
	pub->qos = 1;
	pub->dup = false;
	if (v == MQTT_V5) /* an empty topic needs a topic alias */
		save(&p, v, "_alias");
}

static void gen_acks(uint8_t v)
{
	for (uint8_t t = MQTT_PUBACK; t <= MQTT_PUBCOMP; t++) {
		struct mqtt_packet p = {.type = t};

		p.u.ack.packet_id = 5;
		save(&p, v, "");
		if (v != MQTT_V5)
			continue;
		p.u.ack.reason = t >= MQTT_PUBREL ? 0x92 : 0x10;
		p.u.ack.props.present = PB(REASON_STRING);
		p.u.ack.props.reason_string = S("why");
		with_user(&p.u.ack.props);
		save(&p, v, "_reason");
	}
}

static void gen_subscribe(uint8_t v)
{
	struct mqtt_packet p = {.type = MQTT_SUBSCRIBE};
	struct mqtt_subscribe *s = &p.u.subscribe;

	s->packet_id = 9;
	s->list = subs;
	s->count = 2;
	s->props.present = PB(SUBSCRIPTION_ID);
	s->props.sub_ids = sub_ids;
	s->props.sub_id_count = 1;
	with_user(&s->props);
	save(&p, v, "");
	p.type = MQTT_UNSUBSCRIBE;
	s->props.present &= ~PB(SUBSCRIPTION_ID);
	s->props.sub_id_count = 0;
	save(&p, v, "");
}

static void gen_acks_of_subscribe(uint8_t v)
{
	struct mqtt_packet p = {.type = MQTT_SUBACK};

	p.u.suback.packet_id = 9;
	p.u.suback.codes = codes;
	p.u.suback.count = sizeof(codes);
	p.u.suback.props.present = PB(REASON_STRING);
	p.u.suback.props.reason_string = S("r");
	save(&p, v, "");
	p.type = MQTT_UNSUBACK;
	p.u.suback.count = 1;
	save(&p, v, "");
}

static void gen_small(uint8_t v)
{
	struct mqtt_packet p = {.type = MQTT_PINGREQ};

	save(&p, v, "");
	p.type = MQTT_PINGRESP;
	save(&p, v, "");
	p.type = MQTT_DISCONNECT;
	save(&p, v, "");
	if (v != MQTT_V5)
		return;
	p.type = MQTT_AUTH;
	save(&p, v, "");
	p.u.disconnect.reason = 0x18;
	p.u.disconnect.props.present = PB(AUTH_METHOD) | PB(AUTH_DATA);
	p.u.disconnect.props.auth_method = S("m");
	p.u.disconnect.props.auth_data = B("d");
	save(&p, v, "_continue");
	p.type = MQTT_DISCONNECT;
	p.u.disconnect.reason = 0x8B;
	p.u.disconnect.props.present = PB(SESSION_EXPIRY) | PB(REASON_STRING);
	p.u.disconnect.props.reason_string = S("bye");
	save(&p, v, "_reason");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	dir = argv[1];
	for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++) {
		gen_connect(v);
		gen_connack(v);
		gen_publish(v);
		gen_acks(v);
		gen_subscribe(v);
		gen_acks_of_subscribe(v);
		gen_small(v);
	}
	return 0;
}
