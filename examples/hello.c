/*
 * hello: connect (URL from argv, e.g. ws://localhost:8083/mqtt or
 * wss://host:8084/mqtt), subscribe, publish, print the message.
 *   cc hello.c $(pkg-config --cflags --libs libtern) -o hello
 *   ./hello ws://localhost:8083/mqtt [cafile]
 */
#include <stdio.h>
#include <tern/tern.h>

static int got;

static void on_message(tern_client *c, const struct tern_message *m, void *ud)
{
	printf("%s: %.*s\n", m->topic, (int)m->payload_len,
	       (const char *)m->payload);
	got = 1;
}

int main(int argc, char **argv)
{
	struct tern_options o;
	struct tern_sub sub = {.filter = "hello/tern", .qos = 1};
	char err[256];
	int rc;

	tern_options_init(&o);
	o.url = argc > 1 ? argv[1] : "ws://localhost:8083/mqtt";
	o.cafile = argc > 2 ? argv[2] : NULL;
	o.cb.on_message = on_message;
	tern_client *c = tern_client_new(&o, err, sizeof(err));
	if (!c)
		return fprintf(stderr, "hello: %s\n", err), 1;
	if ((rc = tern_client_connect(c, 5000, NULL)) == 0 &&
	    (rc = tern_client_subscribe_wait(c, &sub, 1, 0, 5000, NULL)) == 0)
		rc = tern_client_publish_wait(c, "hello/tern", "hello, world",
		                              12, 1, false, NULL, 5000, NULL);
	for (int i = 0; rc == 0 && !got && i < 50; i++)
		tern_client_loop_once(c, 100); /* until the message is back */
	if (rc)
		fprintf(stderr, "hello: %s\n", tern_strerror(rc));
	tern_client_disconnect(c, 1000);
	tern_client_destroy(c);
	return rc || !got;
}
