/* Descriptions of the TERN_E* codes declared in error.h. */
#include "base/error.h"

const char *tern_strerror(int err)
{
	switch (err) {
	case TERN_OK: return "success";
	case TERN_EAGAIN: return "need more data";
	case TERN_ENOMEM: return "out of memory";
	case TERN_EMALFORMED: return "malformed packet";
	case TERN_EPROTO: return "protocol error";
	case TERN_ETOOBIG: return "too large";
	case TERN_EINVAL: return "invalid argument";
	case TERN_EIO: return "input/output error";
	case TERN_ECLOSED: return "connection closed";
	case TERN_ETIMEDOUT: return "timed out";
	case TERN_EVERSION: return "unsupported protocol version";
	case TERN_EUTF8: return "invalid UTF-8";
	case TERN_ENOENT: return "not found";
	case TERN_EEXIST: return "already exists";
	case TERN_EDENIED: return "not authorised";
	case TERN_ELIMIT: return "limit reached";
	case TERN_ECONFIG: return "configuration error";
	case TERN_ETLS: return "TLS failure";
	case TERN_EREFUSED: return "connection refused by the server";
	case TERN_ECONNECT: return "cannot connect";
	case TERN_ECANCELED: return "canceled";
	}
	return "unknown error";
}
