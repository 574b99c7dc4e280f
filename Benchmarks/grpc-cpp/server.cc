// tether.testing.v1.EchoService on gRPC C++'s callback API (its fastest server
// API), the peer the transport benchmark compares Tether's server against.
// Implements Echo and Chat: payload, text and index, as Tether's EchoService does
// (no delay / failure / metadata instructions).
//
//   grpc-cpp-server HOST:PORT [CERT_PEM KEY_PEM]    TLS with a certificate, else h2c
//
// Prints "listening on HOST:PORT" once serving; SIGTERM or SIGINT shuts it down.
#include <csignal>
#include <fstream>
#include <iostream>
#include <sstream>

#include <grpcpp/grpcpp.h>

#include "tether/testing/v1/echo.grpc.pb.h"

using tether::testing::v1::EchoRequest;
using tether::testing::v1::EchoResponse;
using tether::testing::v1::EchoService;

namespace {

std::string ReadFile(const char* path) {
  std::ifstream in(path);
  if (!in) { std::cerr << "cannot read " << path << "\n"; std::exit(1); }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Each request answered by one response, in order: read, write, read again.
class ChatReactor : public grpc::ServerBidiReactor<EchoRequest, EchoResponse> {
 public:
  ChatReactor() { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    if (!ok) return Finish(grpc::Status::OK);  // client half-closed (or cancelled)
    response_.set_payload(request_.payload());
    response_.set_text(request_.text());
    response_.set_index(index_++);
    StartWrite(&response_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  EchoRequest request_;
  EchoResponse response_;
  uint32_t index_ = 0;
};

class EchoServiceImpl final : public EchoService::CallbackService {
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context, const EchoRequest* request,
                                 EchoResponse* response) override {
    response->set_payload(request->payload());
    response->set_text(request->text());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerBidiReactor<EchoRequest, EchoResponse>* Chat(grpc::CallbackServerContext*) override {
    return new ChatReactor();
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 && argc != 4) {
    std::cerr << "usage: grpc-cpp-server HOST:PORT [CERT_PEM KEY_PEM]\n";
    return 2;
  }
  // Block the stop signals in every thread gRPC starts; main waits for them below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (argc == 4) {
    grpc::SslServerCredentialsOptions options;
    options.pem_key_cert_pairs.push_back({ReadFile(argv[3]), ReadFile(argv[2])});
    credentials = grpc::SslServerCredentials(options);
  }
  EchoServiceImpl service;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(argv[1], credentials);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) { std::cerr << "could not listen on " << argv[1] << "\n"; return 1; }
  std::cout << "listening on " << argv[1] << (argc == 4 ? " (tls)" : " (h2c)") << std::endl;

  int received = 0;
  sigwait(&stop, &received);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}
