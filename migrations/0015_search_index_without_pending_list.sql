-- The search index (messages_tsv_idx, 0001) takes each message's words into the index as it is written, instead of
-- into GIN's pending list (fastupdate). With the list, inserts were cheap until the list reached 4 MB (about 1,700
-- messages of ten words, some 15 s at a hundred messages a second), and then the insert that found it full merged
-- all of it into the index inside its own statement: that append, and the ones waiting behind it, stalled for
-- 20–150 ms, every 15 s. Without it (the checked append at 100 statements/s on 4 connections, one minute each,
-- alternating): p99 4.6 → 2.5 ms, p99.9 104 → 5.8 ms, max 146 → 10 ms, the median unchanged; searches no longer
-- read through an unsorted list either. What the list holds now goes into the index here.
ALTER INDEX messages_tsv_idx SET (fastupdate = off);
SELECT gin_clean_pending_list('messages_tsv_idx'::regclass);
