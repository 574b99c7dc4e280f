// nodejs http_parser 2.9 (Debian's libhttp-parser-dev): HTTP/1.1 request parsing for the
// transport's HTTP/1.1 connections. No shims needed: HTTP_PARSER_ERRNO is a cast of the
// `http_errno` bit-field, which Swift reads directly. No pkg-config file ships with it.
#include <http_parser.h>
