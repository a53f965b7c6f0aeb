SELECT bench.naive_reserve(:line, 1);
