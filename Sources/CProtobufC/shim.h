// protobuf-c runtime (message pack/unpack by descriptor).
#include <protobuf-c/protobuf-c.h>
