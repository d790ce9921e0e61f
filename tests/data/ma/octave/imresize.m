function B = imresize(A, arg, method)
% MATLAB imresize, bicubic only (antialiasing when shrinking), by a scale or to an output size.
% Octave's image-package imresize interpolates differently (interp2), so this stands in for it.
if nargin > 2 && ~strcmpi(method, 'bicubic'), error('only bicubic'); end
insz = [size(A, 1) size(A, 2)];
if isscalar(arg)
  scale = [arg arg]; outsz = ceil(scale .* insz);
else
  outsz = arg; scale = outsz ./ insz;
end
[~, order] = sort(scale);
B = double(A);
for k = order
  [w, ind] = contrib_(insz(k), outsz(k), scale(k));
  if k == 1
    out = zeros(outsz(1), size(B, 2));
    for t = 1:size(w, 2), out = out + w(:, t) .* B(ind(:, t), :); end
  else
    out = zeros(size(B, 1), outsz(2));
    for t = 1:size(w, 2), out = out + w(:, t)' .* B(:, ind(:, t)); end
  end
  B = out;
end
end
function [w, ind] = contrib_(inl, outl, s)
width = 4;
if s < 1, width = width / s; end
u = (1:outl)';
x = u / s + 0.5 * (1 - 1/s);
left = floor(x - width/2);
P = ceil(width) + 2;
ind = left + (0:P-1);
d = x - ind;
if s < 1, w = s * cub_(s * d); else, w = cub_(d); end
w = w ./ sum(w, 2);
aux = [1:inl, inl:-1:1];
ind = aux(mod(ind - 1, numel(aux)) + 1);
if isrow(ind) && outl == 1, ind = ind(:)'; end
keep = any(w ~= 0, 1);
w = w(:, keep); ind = ind(:, keep);
end
function f = cub_(x)
a = abs(x); a2 = a.^2; a3 = a.^3;
f = (1.5*a3 - 2.5*a2 + 1) .* (a <= 1) + (-0.5*a3 + 2.5*a2 - 4*a + 2) .* ((1 < a) & (a <= 2));
end
