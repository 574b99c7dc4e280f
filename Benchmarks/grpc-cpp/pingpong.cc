// The transport benchmark's round-trip client on gRPC C++: one Chat call on one
// channel, sequential Write + Read round trips on the synchronous API (the calling
// thread drives the completion queue, so no thread hop on the client side).
//
//   grpc-cpp-pingpong HOST:PORT [--ca PEM --server-name NAME] [--payload-bytes 32]
//                     [--warmup 2000] [--round-trips 20000]
//
// Prints: round_trips=N p50_us=X p99_us=Y mean_us=Z (nearest-rank, like the others).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "tether/testing/v1/echo.grpc.pb.h"

using tether::testing::v1::EchoRequest;
using tether::testing::v1::EchoResponse;
using tether::testing::v1::EchoService;

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) { std::cerr << "cannot read " << path << "\n"; std::exit(1); }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

double Percentile(const std::vector<int64_t>& sorted, double q) {
  size_t rank = std::max<size_t>(1, static_cast<size_t>(std::ceil(sorted.size() * q)));
  return sorted[std::min(rank, sorted.size()) - 1] / 1e3;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc % 2 != 0) {
    std::cerr << "usage: grpc-cpp-pingpong HOST:PORT [--ca PEM --server-name NAME] [--payload-bytes N]"
                 " [--warmup N] [--round-trips N]\n";
    return 2;
  }
  std::map<std::string, std::string> flags = {
      {"--ca", ""}, {"--server-name", "localhost"}, {"--payload-bytes", "32"},
      {"--warmup", "2000"}, {"--round-trips", "20000"}};
  for (int i = 2; i < argc; i += 2) {
    if (!flags.count(argv[i])) { std::cerr << "unknown flag " << argv[i] << "\n"; return 2; }
    flags[argv[i]] = argv[i + 1];
  }
  const int payload_bytes = std::stoi(flags["--payload-bytes"]);
  const int warmup = std::stoi(flags["--warmup"]);
  const int round_trips = std::stoi(flags["--round-trips"]);

  grpc::ChannelArguments arguments;
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!flags["--ca"].empty()) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ReadFile(flags["--ca"]);
    credentials = grpc::SslCredentials(options);
    arguments.SetSslTargetNameOverride(flags["--server-name"]);
  }
  auto stub = EchoService::NewStub(grpc::CreateCustomChannel(argv[1], credentials, arguments));

  grpc::ClientContext context;
  auto call = stub->Chat(&context);
  EchoRequest request;
  request.set_payload(std::string(payload_bytes, 'p'));
  EchoResponse response;
  std::vector<int64_t> samples;
  samples.reserve(round_trips);
  for (int i = 0; i < warmup + round_trips; i++) {
    auto start = std::chrono::steady_clock::now();
    if (!call->Write(request) || !call->Read(&response)) {
      std::cerr << "grpc-cpp-pingpong: call ended after " << i << " round trips: "
                << call->Finish().error_message() << "\n";
      return 1;
    }
    auto elapsed = std::chrono::steady_clock::now() - start;
    if (response.payload().size() != static_cast<size_t>(payload_bytes)) {
      std::cerr << "grpc-cpp-pingpong: echo " << i << " has the wrong size\n";
      return 1;
    }
    if (i >= warmup) samples.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count());
  }
  call->WritesDone();
  grpc::Status status = call->Finish();
  if (!status.ok()) { std::cerr << "grpc-cpp-pingpong: " << status.error_message() << "\n"; return 1; }

  double mean = 0;
  for (int64_t s : samples) mean += s;
  mean /= samples.size() * 1e3;
  std::sort(samples.begin(), samples.end());
  std::printf("round_trips=%zu p50_us=%.1f p99_us=%.1f mean_us=%.1f\n", samples.size(), Percentile(samples, 0.50),
              Percentile(samples, 0.99), mean);
  return 0;
}
