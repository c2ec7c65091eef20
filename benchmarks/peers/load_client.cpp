// The trader of benchmarks/external_peers.py: a QuickFIX C++ initiator that sends limit
// NewOrderSingles (FIX.4.4) and times each to its terminal ExecutionReport.
//
//   load_client SETTINGS ORDERS WINDOW SYMBOL PRICE ACCOUNT
//
// Logs on, warms up, sends ORDERS one at a time (round trip p50, p99), then ORDERS with
// at most WINDOW outstanding (orders per second until all are terminal), and prints one
// JSON line (after a line "window" as that phase starts). A client in C++ keeps the trader's own cost out of what is measured.
#include <quickfix/Application.h>
#include <quickfix/FileStore.h>
#include <quickfix/Log.h>
#include <quickfix/Session.h>
#include <quickfix/SessionSettings.h>
#include <quickfix/SocketInitiator.h>
#include <quickfix/fix44/NewOrderSingle.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

using Clock = std::chrono::steady_clock;

class Trader : public FIX::Application {
 public:
  std::mutex mu;
  std::condition_variable cv;
  bool logged_on = false;
  long done = 0;
  std::unordered_map<std::string, Clock::time_point> sent;
  std::vector<double> rtt_us;
  std::map<char, long> statuses;
  std::string last_text;
  FIX::SessionID sid;

  void onCreate(const FIX::SessionID&) override {}
  void onLogon(const FIX::SessionID& s) override {
    std::lock_guard<std::mutex> g(mu);
    sid = s;
    logged_on = true;
    cv.notify_all();
  }
  void onLogout(const FIX::SessionID&) override {}
  void toAdmin(FIX::Message&, const FIX::SessionID&) override {}
  void toApp(FIX::Message&, const FIX::SessionID&) throw(FIX::DoNotSend) override {}
  void fromAdmin(const FIX::Message&, const FIX::SessionID&)
      throw(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue, FIX::RejectLogon) override {}

  void fromApp(const FIX::Message& m, const FIX::SessionID&)
      throw(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue,
             FIX::UnsupportedMessageType) override {
    auto now = Clock::now();
    if (m.getHeader().getField(FIX::FIELD::MsgType) != "8") return;
    char status = m.getField(FIX::FIELD::OrdStatus)[0];
    if (status != '2' && status != '4' && status != '8' && status != 'C' && status != '3') return;
    std::string cl = m.getField(FIX::FIELD::ClOrdID);
    std::lock_guard<std::mutex> g(mu);
    auto it = sent.find(cl);
    if (it == sent.end()) return;
    rtt_us.push_back(std::chrono::duration<double, std::micro>(now - it->second).count());
    sent.erase(it);
    statuses[status]++;
    if (status == '8' && m.isSetField(FIX::FIELD::Text)) last_text = m.getField(FIX::FIELD::Text);
    done++;
    cv.notify_all();
  }

  void order(long n, const std::string& symbol, const std::string& price, const std::string& account) {
    std::string cl = "C" + std::to_string(n);
    FIX44::NewOrderSingle m(FIX::ClOrdID(cl), FIX::Side(n % 2 ? FIX::Side_BUY : FIX::Side_SELL),
                            FIX::TransactTime(), FIX::OrdType(FIX::OrdType_LIMIT));
    m.set(FIX::Symbol(symbol));
    m.set(FIX::OrderQty(100 + n % 7));
    m.setField(FIX::Price(std::stod(price)));
    m.set(FIX::Account(account));
    m.set(FIX::TimeInForce(FIX::TimeInForce_IMMEDIATE_OR_CANCEL));
    {
      std::lock_guard<std::mutex> g(mu);
      sent[cl] = Clock::now();
    }
    FIX::Session::sendToTarget(m, sid);
  }

  // `orders` from id `start`, at most `window` outstanding: seconds until all are terminal
  double run(long orders, long window, long start, const std::string& symbol, const std::string& price,
             const std::string& account) {
    {
      std::lock_guard<std::mutex> g(mu);
      done = 0;
    }
    auto t0 = Clock::now();
    for (long k = 0; k < orders; k++) {
      {
        std::unique_lock<std::mutex> g(mu);
        cv.wait(g, [&] { return k - done < window; });
      }
      order(start + k, symbol, price, account);
    }
    std::unique_lock<std::mutex> g(mu);
    if (!cv.wait_for(g, std::chrono::seconds(60), [&] { return done >= orders; })) {
      std::fprintf(stderr, "load_client: %ld orders never finished\n", orders - done);
      std::exit(3);
    }
    return std::chrono::duration<double>(Clock::now() - t0).count();
  }
};

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s SETTINGS ORDERS WINDOW SYMBOL PRICE ACCOUNT\n", argv[0]);
    return 2;
  }
  long orders = std::stol(argv[2]), window = std::stol(argv[3]);
  std::string symbol = argv[4], price = argv[5], account = argv[6];
  FIX::SessionSettings settings(argv[1]);
  Trader app;
  FIX::FileStoreFactory store(settings);
  FIX::SocketInitiator initiator(app, store, settings);
  initiator.start();
  {
    std::unique_lock<std::mutex> g(app.mu);
    if (!app.cv.wait_for(g, std::chrono::seconds(30), [&] { return app.logged_on; })) {
      std::fprintf(stderr, "load_client: no logon\n");
      return 3;
    }
  }
  app.run(std::min(200L, orders), 1, 0, symbol, price, account);  // warm-up
  app.rtt_us.clear();
  app.run(orders, 1, 1000000, symbol, price, account);
  std::vector<double> rtt = app.rtt_us;
  std::sort(rtt.begin(), rtt.end());
  double mean = 0;
  for (double r : rtt) mean += r / rtt.size();
  std::printf("window\n");  // the harness reads CPU times from here to the result
  std::fflush(stdout);
  double seconds = app.run(orders, window, 2000000, symbol, price, account);
  std::printf("{\"p50_us\": %.1f, \"p99_us\": %.1f, \"mean_us\": %.1f, \"orders_per_s\": %.1f, \"statuses\": {",
              rtt[rtt.size() / 2], rtt[rtt.size() * 99 / 100], mean, orders / seconds);
  const char* sep = "";
  for (auto& s : app.statuses) {
    std::printf("%s\"%c\": %ld", sep, s.first, s.second);
    sep = ", ";
  }
  std::string text;
  for (char c : app.last_text) text += (c == '"' || c == '\\') ? '\'' : c;
  std::printf("}, \"last_reject\": \"%s\"}\n", text.c_str());
  std::fflush(stdout);
  initiator.stop();
  return 0;
}
