// A C++ program with many small allocations (strings, vectors, maps); prints
// a checksum that must not change under the library.
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

int main()
{
    std::map<std::string, std::vector<int>> m;
    unsigned long sum = 0;
    for (int i = 0; i < 20000; i++) {
        std::string key = "key-" + std::to_string(i % 997);
        m[key].push_back(i);
        auto owned = std::make_unique<std::string>(key + key);
        sum += owned->size();
    }
    for (auto &kv : m)
        for (int v : kv.second)
            sum = sum * 31 + (unsigned long)v + kv.first.size();
    std::printf("%lu %zu\n", sum, m.size());
    return 0;
}
