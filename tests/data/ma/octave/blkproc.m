function b = blkproc(a, block, border, fun)
% Minimal stand-in for MATLAB's blkproc(A, [M N], [MB NB], FUN) with a scalar-valued FUN:
% A zero-padded at the bottom/right to whole blocks and by the border all round; one output per block.
[ma, na] = size(a);
mb = block(1); nb = block(2); mbo = border(1); nbo = border(2);
mpad = rem(mb - rem(ma, mb), mb); npad = rem(nb - rem(na, nb), nb);
aa = zeros(ma + mpad + 2*mbo, na + npad + 2*nbo, class(a));
aa(mbo+1:mbo+ma, nbo+1:nbo+na) = a;
mblocks = (ma + mpad)/mb; nblocks = (na + npad)/nb;
b = zeros(mblocks, nblocks);
for i = 1:mblocks
  for j = 1:nblocks
    b(i, j) = feval(fun, aa((i-1)*mb + (1:mb+2*mbo), (j-1)*nb + (1:nb+2*nbo)));
  end
end
end
