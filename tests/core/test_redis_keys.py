from voicebot_core.redis_keys import RedisKeys


def test_key_families_split_around_the_id_for_lua_scripts():
    keys = RedisKeys("vb")
    head, tail = keys.around_id(keys.worker_calls)
    assert head + "w-7" + tail == keys.worker_calls("w-7") == "vb:worker:w-7:calls"
    assert keys.around_id(keys.dial_job) == ("vb:dial-job:", "")
