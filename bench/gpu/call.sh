export NCCL_NVLS_ENABLE=0
b=.publish/linux-x64/longctx; chmod +x $b
tar -C .publish -xJf .publish/gpu-tests.tar.xz && chmod +x .publish/gpu-tests/LongCtx.GpuTestRunner
.publish/gpu-tests/LongCtx.GpuTestRunner --filter DecodeAttention > $OUT/dec-tests.txt 2>&1; grep -E "^(FAIL|gpu tests)" $OUT/dec-tests.txt | head -20
t() { python3 bench/gpu/attention_table.py "$1"; }
$b bench-attention --context 32768,131072 --mask causal,none --attention cudnn,kernel --repeat 3 --json > /tmp/a0.json 2>/tmp/a0.err; echo "== default"; t /tmp/a0.json; tail -2 /tmp/a0.err
for v in STAGES=2 FORWARD_TILES STAGES=2,FORWARD_TILES; do echo "== $v"; LONGCTX_KERNEL_DEFINES=$v $b bench-attention --context 32768,131072 --mask causal,none --attention kernel --repeat 3 --json > /tmp/a.json 2>/tmp/a.err; t /tmp/a.json; tail -2 /tmp/a.err; done
LONGCTX_KERNEL_DEFINES=STAGES=2 $b bench-attention --context 4096 --mask causal,none --attention cudnn,kernel --repeat 1 --json > /tmp/a.json 2>&1; t /tmp/a.json
echo "== decode mma"; $b bench-attention --mask decode --context 8192,32768,131072 --repeat 50 --json > /tmp/d.json 2>/tmp/d.err; t /tmp/d.json; tail -2 /tmp/d.err
echo "== decode old"; LONGCTX_DECODE_MMA=0 $b bench-attention --mask decode --context 8192,32768,131072 --repeat 50 --json > /tmp/d.json 2>/tmp/d.err; t /tmp/d.json
for st in 2 4; do echo "== decode mma stages $st"; LONGCTX_DECODE_MMA_STAGES=$st $b bench-attention --mask decode --context 131072 --repeat 50 --json > /tmp/d.json 2>/tmp/d.err; t /tmp/d.json; done
echo "== 8B decode"; $b bench --config llama3-8b --context 130000 --warmup 0 --decode-steps 16 --profile > $OUT/dec8b.txt 2>&1; grep -iE "ms/token|per token|decode|split" $OUT/dec8b.txt | head -12
