\set l random(0, 999)
SELECT code FROM credit.get_available('bench', 's' || :l);
